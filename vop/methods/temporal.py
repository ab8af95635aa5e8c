"""A frame-position signal for the places where VoP's frames exchange information.

Attention over the frames' CLS tokens without positional information is permutation-
equivariant, and the video embedding is a mean over frames, so VoP^C's generator and VoP^F's
inter-frame layers give the same video embedding for a clip and the clip played backwards
(tests/library/methods/test_order.py). `method.tuner.temporal=true` adds one learned vector per (layer, frame
position) to the CLS tokens those modules see. The vectors start at zero, so a fresh model
computes exactly what it computes without them; training decides whether to use time.
"""
from __future__ import annotations

import torch
from torch import nn

from vop.errors import ConfigError


class TemporalEmbedding(nn.Module):
    """Adds embedding[layer, t] to frame t's CLS token [B, T, W] at the given vision layers."""

    def __init__(self, layers: set[int], frames: int, width: int):
        super().__init__()
        self.slot = {layer: i for i, layer in enumerate(sorted(layers))}  # vision layer -> row of embedding
        self.frames = frames
        self.embedding = nn.Parameter(torch.zeros(len(self.slot), frames, width))  # [L', frames, W]

    def forward(self, index: int, cls: torch.Tensor) -> torch.Tensor:
        """cls [B, T, W] of vision layer `index` -> cls + position vectors (unchanged at other layers)."""
        if index not in self.slot:
            return cls
        t = cls.shape[1]
        if t > self.frames:
            raise ConfigError(f"VoP temporal embeddings cover {self.frames} frame positions (method.tuner.frames) "
                              f"but the video has {t} frames")
        return cls + self.embedding[self.slot[index], :t].to(cls.dtype)
