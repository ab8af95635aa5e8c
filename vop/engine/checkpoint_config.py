"""A trained run's stored config beside the command line's: which groups come from the checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, open_dict

from vop.engine.checkpoint import check_compatible

# Groups a checkpoint brings with it unless the command line chooses them explicitly.
FROM_CHECKPOINT = ("model", "method", "data", "decoder")


def chosen_on_command_line(overrides: Sequence[str], group: str) -> bool:
    return any(o.lstrip("+~").split("=")[0].split(".")[0] == group for o in overrides)


def merge_checkpoint_config(cfg: DictConfig, saved: DictConfig, overrides: Sequence[str], path: Path) -> DictConfig:
    """Take the trained run's model/method/data/decoder, except groups named on the command line.
    `saved` is what read_checkpoint returns: rebuilt from the project's own groups and checked."""
    cfg = cfg.copy()
    with open_dict(cfg):
        for group in FROM_CHECKPOINT:
            if not chosen_on_command_line(overrides, group):
                cfg[group] = saved[group]
    check_compatible(saved, cfg, path)
    return cfg
