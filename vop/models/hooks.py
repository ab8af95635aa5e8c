"""Per-layer insertion points of the CLIP towers.

`CLIPVideoModel` runs both transformer towers layer by layer and calls these methods at the
points where tuning methods change the computation: prompt tokens inserted before a layer and
dropped after it (VoP), layers that mix information across the frames of one video (VoP^F),
adapters around a block. The base class is the identity, i.e. plain CLIP. A method subclasses
it, keeps its new parameters on it, and installs it with `model.set_hooks(...)`; every parameter
under `model.hooks` therefore counts as a *new* parameter (its own learning rate).
"""
from __future__ import annotations

import torch
from torch import nn


def causal_mask(x: torch.Tensor) -> torch.Tensor:
    """Additive causal mask [1, 1, L, L] for x [B, L, W], in x's dtype.

    An explicit mask (rather than `is_causal`) keeps every attention implementation (eager,
    SDPA) causal, and follows the sequence length when prompts change it.
    """
    length = x.shape[1]
    mask = torch.full((length, length), torch.finfo(x.dtype).min, dtype=x.dtype, device=x.device)
    return mask.triu(1)[None, None]


def run_block(layer: nn.Module, x: torch.Tensor, mask: torch.Tensor | None,
              after_attn: nn.Module | None = None, after_mlp: nn.Module | None = None) -> torch.Tensor:
    """HF `CLIPEncoderLayer.forward` written out, with optional modules applied to the attention
    output and to the MLP output before each residual add (adapters). Without them it computes
    exactly `layer(x, mask)` (tests/library/methods/test_methods.py checks this)."""
    h, _ = layer.self_attn(hidden_states=layer.layer_norm1(x), attention_mask=mask)
    x = x + (after_attn(h) if after_attn is not None else h)
    h = layer.mlp(layer.layer_norm2(x))
    return x + (after_mlp(h) if after_mlp is not None else h)


class TowerHooks(nn.Module):
    """Identity hooks: the model computes exactly CLIP."""

    def vision_input(self, vision: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Patch + position embeddings x [B*T, N, W] -> input of vision block 0 (pre-LayerNorm).

        VoP inserts its layer-0 prompts here, before the pre-LayerNorm."""
        return vision.pre_layrnorm(x)

    def embed_text(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        """Token + positional embeddings of the text tower, [B, L] -> [B, L, W]."""
        return model.clip.text_model.embeddings(input_ids=input_ids)

    def vision_layer(self, index: int, layer: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Run vision block `index` on x [B*T, N, W]; the T frames of a video are contiguous."""
        return layer(x, None)

    def text_layer(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Run text block `index` on x [B, L, W] (causal)."""
        return layer(x, causal_mask(x))

    def pool_vision(self, vision: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Per-frame features [B*T, W] after the post-LayerNorm, from the last block's output x.

        CLIP reads each frame's CLS token. A method whose read-out is one vector per video (DGL)
        returns it for each of the video's T frames: the video embedding, the mean of the normalised
        frame embeddings, is then that vector normalised."""
        return vision.post_layernorm(x[:, 0])

    def pool_text(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Text feature [B, W] read at the end-of-text positions eot [B] of x [B, L, W]."""
        return x[torch.arange(x.shape[0], device=x.device), eot]
