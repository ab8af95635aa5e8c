"""The tuning-method contract: freeze CLIP, then unfreeze or add exactly the method's parameters."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from torch import nn

from vop.models.clip import CLIPVideoModel
from vop.models.hooks import TowerHooks

log = logging.getLogger(__name__)

NEW_PREFIX = "hooks."  # parameters a method adds live on the model's hooks module


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / max(self.total, 1)

    def __str__(self) -> str:
        return f"trainable: {self.trainable:,} / {self.total:,} ({self.percent:.2f}%)"


def count_parameters(model: nn.Module) -> ParameterCount:
    params = list(model.parameters())
    return ParameterCount(sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


class TuningMethod:
    """Base class of every tuning method.

    A subclass names the pretrained tensors it trains with `patterns()` (regular expressions
    matched with `re.search` against parameter names of `CLIPVideoModel`) and/or adds new
    parameters by returning hooks from `make_hooks()`. `apply()` freezes everything else. Its name is
    the config's (`method.name`, the YAML file's stem), never an attribute of the class.
    """

    def patterns(self) -> list[str]:
        return []

    def make_hooks(self, model: CLIPVideoModel) -> TowerHooks | None:
        return None

    def no_decay(self, name: str, param: nn.Parameter) -> bool:
        """Parameters exempt from weight decay: 1-d tensors (biases, norms, the temperature)."""
        return param.ndim <= 1

    def inert_parameters(self, model: CLIPVideoModel) -> int:
        """Trainable values that cannot reach the output for typical inputs (after `apply`): 0 here."""
        return 0

    def merge(self, model: CLIPVideoModel) -> None:
        """Fold the trained tensors into CLIP's own modules (for the HF export): nothing to do for a
        method that trains CLIP's tensors in place; LoRA merges its low-rank updates."""

    def apply(self, model: CLIPVideoModel) -> ParameterCount:
        model.requires_grad_(False)
        hooks = self.make_hooks(model)
        if hooks is not None:
            hooks.requires_grad_(True)
            model.set_hooks(hooks)
        names = [n for n, _ in model.named_parameters() if not n.startswith(NEW_PREFIX)]
        for pattern in self.patterns():
            matched = [n for n in names if re.search(pattern, n)]
            if not matched:
                raise ValueError(f"{type(self).__name__}: pattern {pattern!r} matches no parameter of the model")
            for n in matched:
                model.get_parameter(n).requires_grad_(True)
        count = count_parameters(model)
        log.info("%s: %s", type(self).__name__, count)
        return count


def is_new(name: str) -> bool:
    """True for parameters the method added (trained with the new-parameter learning rate)."""
    return name.startswith(NEW_PREFIX)
