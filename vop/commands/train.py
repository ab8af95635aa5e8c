"""`train.py`: check the composed config, then train and evaluate one run (DDP under torchrun)."""
from __future__ import annotations

from omegaconf import DictConfig

from vop.config.check import check_config
from vop.engine import distributed
from vop.engine.trainer import Trainer


def train(cfg: DictConfig) -> dict:
    check_config(cfg)  # before any data, weights or process group
    try:
        return Trainer(cfg).fit()
    finally:
        distributed.cleanup()
