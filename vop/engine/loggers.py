"""Run logging: scalars to <run dir>/log.jsonl always, and to W&B when `logger=wandb` (rank 0 only)."""
from __future__ import annotations

import json
import logging
import netrc
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def wandb_api_key_configured() -> bool:
    """An API key in the environment or in ~/.netrc (where `wandb login` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str) -> str:
    """`online` falls back to `offline` without an API key: the run is kept locally (sync it later
    with `wandb sync <run dir>/wandb/offline-run-*`) instead of failing or prompting."""
    if requested == "online" and not wandb_api_key_configured():
        log.warning("logger.wandb.mode=online but no W&B API key is configured: logging offline")
        return "offline"
    return requested


class RunLogger:
    """`enabled=False` (ranks other than 0 under DDP) makes every call a no-op."""

    def __init__(self, run_dir: Path, cfg: DictConfig, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "log.jsonl"
        self.start = time.time()
        self.wandb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.wandb = self._init_wandb(cfg, Path(run_dir)) if cfg.logger.wandb else None

    @staticmethod
    def _init_wandb(cfg: DictConfig, run_dir: Path):
        import wandb  # optional: only runs that ask for W&B need it

        opts = cfg.logger.wandb
        return wandb.init(project=opts.project, entity=opts.entity, tags=list(opts.tags), mode=wandb_mode(opts.mode),
                          dir=str(run_dir), config=OmegaConf.to_container(cfg, resolve=True), name=run_dir.name)

    def log(self, scalars: dict, step: int) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": round(time.time() - self.start, 3), **scalars}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def summary(self, values: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:  # the local log holds the summary too
            f.write(json.dumps({"summary": values}) + "\n")
        if self.wandb is not None:
            self.wandb.summary.update(values)

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
