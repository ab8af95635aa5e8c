"""Run logging: scalars to <run dir>/log.jsonl always, and to W&B when `logger=wandb`."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class RunLogger:
    def __init__(self, run_dir: Path, cfg: DictConfig):
        self.path = Path(run_dir) / "log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.time()
        self.wandb = self._init_wandb(cfg) if cfg.logger.get("wandb") else None

    @staticmethod
    def _init_wandb(cfg: DictConfig):
        import wandb  # optional: only runs that ask for W&B need it

        opts = cfg.logger.wandb
        return wandb.init(project=opts.project, entity=opts.entity, tags=list(opts.tags), mode=opts.mode,
                          dir=str(cfg.paths.output_dir), config=OmegaConf.to_container(cfg, resolve=True),
                          name=Path(cfg.paths.output_dir).name)

    def log(self, scalars: dict, step: int) -> None:
        record = {"step": step, "time": round(time.time() - self.start, 3), **scalars}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def summary(self, values: dict) -> None:
        if self.wandb is not None:
            self.wandb.summary.update(values)

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
