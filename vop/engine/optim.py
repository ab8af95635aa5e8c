"""Optimizer parameter groups and the per-iteration learning-rate schedule."""
from __future__ import annotations

import logging
import math
from typing import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from vop.methods.base import TuningMethod, is_new

log = logging.getLogger(__name__)


def param_groups(model: nn.Module, method: TuningMethod, lr: float, lr_new: float,
                 weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Up to four groups: pretrained vs new parameters x decayed vs not (the method says which).

    `decay_all` (`optim.decay_all`, X-Pool's recipe): every trainable tensor decays, 1-d ones and
    prompts included, as X-Pool's AdamW over two plain learning-rate groups does."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            exempt = not decay_all and method.no_decay(name, param)
            groups.setdefault((is_new(name), exempt), []).append(param)
    return [
        {"params": params, "lr": lr_new if new else lr, "weight_decay": 0.0 if no_decay else weight_decay,
         "name": f"{'new' if new else 'pretrained'}{'_no_decay' if no_decay else ''}"}
        for (new, no_decay), params in sorted(groups.items())
    ]


# Below this, a run from random weights (clip_tiny, clip_b32_random) stays near chance: measured on
# 36 own clips, 8 epochs of the tiny model, full at 1e-3 reached t2v R@1 29 against 8 untrained.
RANDOM_INIT_MIN_LR = 1e-4
LR_KEYS = {"pretrained": "method.lr", "new": "method.lr_new"}


def is_random_init(model_cfg: DictConfig) -> bool:
    """Whether the configured CLIP starts from random weights (built from a config, no weights file)."""
    net = model_cfg.net  # `weights`: an optional key, only from_config models have it
    return net._target_.endswith(".from_config") and not net.get("weights")


def warn_if_too_slow(model_cfg: DictConfig, groups: list[dict]) -> None:
    """One WARNING naming the key when the rate in force cannot move a random-init model."""
    if not is_random_init(model_cfg):
        return
    slow = sorted({(LR_KEYS[g["name"].split("_")[0]], g["lr"]) for g in groups if g["lr"] < RANDOM_INIT_MIN_LR})
    if slow:
        rates = ", ".join(f"{key}={lr:g}" for key, lr in slow)
        log.warning("model=%s starts from random weights, and %s (a rate for fine-tuning pretrained CLIP) "
                    "is below %g: the run will stay near chance. From scratch use e.g. %s=1e-3 (as experiment=demo) "
                    "and method=full; see docs/own_videos.md", model_cfg.name, rates, RANDOM_INIT_MIN_LR,
                    slow[0][0])


def build_optimizer(make: Callable[..., torch.optim.Optimizer], groups: list[dict]) -> torch.optim.Optimizer:
    if not groups:
        raise ValueError("no trainable parameters: this method only evaluates (use eval.py)")
    return make(groups)


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return int(math.ceil(total_steps * warmup_ratio))
