"""LoRA (Hu et al., 2021) through Hugging Face `peft`: low-rank updates W + (alpha/r) B A on chosen
linear layers of CLIP's transformer blocks; everything else is frozen.

`peft` injects its own `LoraLayer` modules in place of CLIP's `nn.Linear`s (`inject_adapter_in_model`
on the HF `CLIPModel`), so the parameter names stay CLIP's with `base_layer` / `lora_A.default` /
`lora_B.default` inserted, and the forward pass is peft's. B starts at zero, so training starts from
CLIP exactly. `merge()` folds the updates into CLIP's weights and puts the plain `nn.Linear`s back
(what peft's `merge_and_unload` does), so a LoRA run exports to a plain `CLIPModel`.
"""
from __future__ import annotations

import logging
import re

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from vop.errors import ConfigError
from vop.methods.base import ParameterCount, TuningMethod, count_parameters
from vop.models.clip import CLIPVideoModel

log = logging.getLogger(__name__)

TOWERS = {"vision": "vision_model", "text": "text_model", "both": "vision_model|text_model"}
# The linear layers of a CLIP encoder block (HF names): attention and MLP.
BLOCK_LINEARS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def lora_config(rank: int, alpha: float, dropout: float, targets: list[str], towers: str) -> LoraConfig:
    """peft's config for CLIPModel: a regular expression (peft full-matches it against module names)
    naming `targets` inside the encoder blocks of the chosen towers only, never the projection heads."""
    pattern = (rf"^(?:{TOWERS[towers]})\.encoder\.layers\.\d+\.(?:self_attn|mlp)\."
               rf"(?:{'|'.join(map(re.escape, targets))})$")
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern, bias="none")


class LoRATuning(TuningMethod):
    """`rank`, `alpha` (scale alpha/rank), `dropout` (on the LoRA branch's input), `targets` (linear
    layers of each block: q_proj k_proj v_proj out_proj fc1 fc2), `towers` (vision | text | both)."""

    def __init__(self, rank: int = 8, alpha: float = 16, dropout: float = 0.1,
                 targets: list[str] = ("q_proj", "v_proj"), towers: str = "both"):
        if rank < 1:
            raise ConfigError(f"lora: method.tuner.rank={rank} must be >= 1")
        if not 0 <= dropout < 1:
            raise ConfigError(f"lora: method.tuner.dropout={dropout} must be in [0, 1)")
        if towers not in TOWERS:
            raise ConfigError(f"lora: method.tuner.towers={towers!r}, expected one of {tuple(TOWERS)}")
        targets = list(targets)
        unknown = [t for t in targets if t not in BLOCK_LINEARS]
        if not targets or unknown:
            raise ConfigError(f"lora: method.tuner.targets={targets} must be a non-empty list of {BLOCK_LINEARS}")
        self.config = lora_config(rank, alpha, dropout, targets, towers)

    def apply(self, model: CLIPVideoModel) -> ParameterCount:
        model.requires_grad_(False)
        inject_adapter_in_model(self.config, model.clip)  # also marks only the LoRA tensors trainable
        count = count_parameters(model)
        log.info("%s: %s (rank %d on %s)", type(self).__name__, count, self.config.r, self.config.target_modules)
        return count

    def merge(self, model: CLIPVideoModel) -> None:
        """Fold every LoRA update into its base weight and put the base `nn.Linear` back in its place
        (peft's merge-and-unload, done on the CLIPModel peft injected into)."""
        for name, module in list(model.clip.named_modules()):
            if isinstance(module, BaseTunerLayer):
                module.merge()
                parent_name, _, child = name.rpartition(".")
                parent: nn.Module = model.clip.get_submodule(parent_name) if parent_name else model.clip
                setattr(parent, child, module.get_base_layer())
