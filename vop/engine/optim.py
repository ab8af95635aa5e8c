"""Optimizer parameter groups and the per-iteration learning-rate schedule."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from vop.methods.base import TuningMethod, is_new


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


def build_optimizer(make: Callable[..., torch.optim.Optimizer], groups: list[dict]) -> torch.optim.Optimizer:
    if not groups:
        raise ValueError("no trainable parameters: this method only evaluates (use eval.py)")
    return make(groups)


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return int(math.ceil(total_steps * warmup_ratio))
