"""Speed and memory switches of `trainer.*`: TF32, gradient checkpointing, torch.compile."""
from __future__ import annotations

import logging

from omegaconf import DictConfig

from vop.engine.precision import set_tf32
from vop.models.clip import CLIPVideoModel

log = logging.getLogger(__name__)


def apply_speed_options(model: CLIPVideoModel, trainer: DictConfig) -> None:
    set_tf32(trainer.tf32)
    model.grad_checkpointing = trainer.grad_checkpointing
    if trainer.compile:
        compile_blocks(model)


def compile_blocks(model: CLIPVideoModel) -> None:
    """torch.compile every transformer block (not the whole model): the per-layer hooks stay plain
    Python, and the 12 identical blocks of a tower share one compiled graph."""
    clip = model.clip
    blocks = [*clip.vision_model.encoder.layers, *clip.text_model.encoder.layers]
    for block in blocks:
        block.compile()
    log.info("torch.compile: %d transformer blocks (compiled on first use)", len(blocks))
