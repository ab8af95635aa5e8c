"""A trained run's stored config beside the command line's: which groups come from the checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from vop.engine.checkpoint import check_compatible

# Groups a checkpoint brings with it unless the command line chooses them explicitly.
FROM_CHECKPOINT = ("model", "method", "data", "decoder")
# Keys older layouts stored that today's name elsewhere: dropped on reading (VoP's tuner once
# repeated `method.name`; the method is now named once, by its config).
RETIRED_KEYS = ("method.tuner.name",)


def chosen_on_command_line(overrides: Sequence[str], group: str) -> bool:
    return any(o.lstrip("+~").split("=")[0].split(".")[0] == group for o in overrides)


def merge_checkpoint_config(cfg: DictConfig, saved: DictConfig, overrides: Sequence[str], path: Path) -> DictConfig:
    """Take the trained run's model/method/data/decoder, except groups named on the command line."""
    cfg = cfg.copy()
    with open_dict(cfg):
        for group in FROM_CHECKPOINT:
            if not chosen_on_command_line(overrides, group):
                cfg[group] = saved[group]
        for key in RETIRED_KEYS:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent)
            if isinstance(node, DictConfig) and leaf in node:
                del node[leaf]
    check_compatible(saved, cfg, path)
    return cfg
