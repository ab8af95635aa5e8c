"""Bottleneck adapters (Houlsby-style) after the attention or after the MLP of every block.

Each adapter maps the sub-layer's output h to h + up(act(down(h))), with `up` initialised to zero
so training starts from CLIP exactly. They sit in every block of both towers. The paper gives
neither width nor placement details beyond "ATTN" / "FFN"; width 82 makes the trainable share
1.65% on B/32 (the paper's figure) with adapters in both towers.
"""
from __future__ import annotations

import torch
from torch import nn

from vop.errors import ConfigError
from vop.methods.base import TuningMethod
from vop.models.clip import CLIPVideoModel
from vop.models.hooks import TowerHooks, causal_mask, run_block

POSITIONS = ("attn", "ffn")


class Adapter(nn.Module):
    def __init__(self, width: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [..., W] -> [..., W]
        return h + self.up(self.act(self.down(h)))


class AdapterHooks(TowerHooks):
    def __init__(self, position: str, vision_width: int, vision_depth: int, text_width: int, text_depth: int,
                 bottleneck: int):
        super().__init__()
        self.position = position
        self.vision = nn.ModuleList(Adapter(vision_width, bottleneck) for _ in range(vision_depth))
        self.text = nn.ModuleList(Adapter(text_width, bottleneck) for _ in range(text_depth))

    def _run(self, layer: nn.Module, x: torch.Tensor, mask, adapter: Adapter) -> torch.Tensor:
        if self.position == "attn":
            return run_block(layer, x, mask, after_attn=adapter)
        return run_block(layer, x, mask, after_mlp=adapter)

    def vision_layer(self, index: int, layer: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self._run(layer, x, None, self.vision[index])

    def text_layer(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self._run(layer, x, causal_mask(x), self.text[index])


class AdapterTuning(TuningMethod):
    """`position`: attn (after self-attention) or ffn (after the MLP); `bottleneck`: hidden width."""

    def __init__(self, position: str = "attn", bottleneck: int = 82):
        if position not in POSITIONS:
            raise ConfigError(f"adapter: method.tuner.position={position!r}, expected one of {POSITIONS}")
        if bottleneck < 1:
            raise ConfigError(f"adapter: method.tuner.bottleneck={bottleneck} must be >= 1")
        self.position, self.bottleneck = position, bottleneck

    def make_hooks(self, model: CLIPVideoModel) -> AdapterHooks:
        v, t = model.clip.config.vision_config, model.clip.config.text_config
        return AdapterHooks(self.position, v.hidden_size, v.num_hidden_layers, t.hidden_size,
                            t.num_hidden_layers, self.bottleneck)
