"""`train.py`: check the composed config, then train and evaluate one run (DDP under torchrun)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from vop.config.check import check_config
from vop.engine import distributed
from vop.engine.resume import RESUME_DIR
from vop.engine.assembly import build_trainer
from vop.run_lock import RunLock, require_not_in_use


def resumed_run_dir(resume: str) -> Path:
    """The run folder a `resume=` names (the folder itself, or the folder of its resume/ file)."""
    path = Path(resume).expanduser()
    return path.parent.parent if path.is_file() and path.parent.name == RESUME_DIR else path


def run_folder_lock(cfg: DictConfig):
    """This run's folder, locked for as long as it runs; rank 0 of a torchrun job holds it for all ranks."""
    if distributed.launch_rank() != 0:
        return contextlib.nullcontext()
    return RunLock(cfg.paths.output_dir)


def train(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict:
    check_config(cfg, overrides)  # before any data, weights or process group
    if cfg.get("resume"):
        require_not_in_use(resumed_run_dir(cfg.resume), "resume=", "resume it once it has stopped")
    with run_folder_lock(cfg):
        try:
            return build_trainer(cfg).fit()
        finally:
            distributed.cleanup()
