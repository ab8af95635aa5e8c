"""Copying saved tensors into parameters, strictly: one rule for every loader."""
from __future__ import annotations

from typing import Mapping

import torch


def copy_strict(targets: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor], source: str,
                hint: str = "", error: type[Exception] = ValueError) -> None:
    """Copy `tensors` into `targets` (same names, same shapes) or raise `error` naming `source`.

    A silently partial load would evaluate a half-initialised model, so the two name sets must be
    equal and every shape must match."""
    missing, unexpected = sorted(targets.keys() - tensors.keys()), sorted(tensors.keys() - targets.keys())
    if missing or unexpected:
        raise error(f"{source} does not fit: missing {missing[:5]} ({len(missing)}), "
                    f"unexpected {unexpected[:5]} ({len(unexpected)}){hint}")
    with torch.no_grad():
        for name, value in tensors.items():
            if targets[name].shape != value.shape:
                raise error(f"{source}: {name} has shape {tuple(value.shape)}, "
                            f"expected {tuple(targets[name].shape)}{hint}")
            targets[name].copy_(value)
