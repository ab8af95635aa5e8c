"""X-Pool (Gorti et al., CVPR 2022): full fine-tuning plus a text-conditioned pooling of the frames.

The caption's embedding is the query of a cross-attention over the video's frame embeddings (keys
and values), so a video's embedding depends on the caption it is compared with. The head follows
the released code's structure (layer6ai-labs/xpool, modules/transformer.py), written here from it:

    t, f   = LN1(text), LN1(frames)                    # one LayerNorm shared by both
    a      = out_proj(attention(q_proj(t), k_proj(f), v_proj(f)))   # heads, scaled dot product
    a      = LN2(a)
    pooled = LN3(a + dropout(linear_proj(a)))           # [videos, captions, D]

with every projection and `linear_proj` initialised to the identity (zero bias), as released.
The score of (caption, video) is the cosine of the caption's embedding and the video pooled by that
caption. Training scores each caption against each video of the batch; evaluation pools every
video by every caption, `eval_chunk` captions at a time so memory stays O(videos x chunk x D).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vop.errors import ConfigError
from vop.methods.base import TuningMethod
from vop.models.clip import CLIPVideoModel
from vop.models.hooks import TowerHooks


class TextConditionedPooling(nn.Module):
    """X-Pool's pooling head over embeddings of width `dim`."""

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.3):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"xpool: method.tuner.heads={heads} must divide the embedding width {dim}")
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))
        self.linear_proj = nn.Linear(dim, dim)
        self.layer_norm1, self.layer_norm2, self.layer_norm3 = (nn.LayerNorm(dim) for _ in range(3))
        self.dropout = nn.Dropout(dropout)
        for layer in (self.q_proj, self.k_proj, self.v_proj, self.out_proj, self.linear_proj):
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)

    def keys_values(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [N, T, D] -> keys and values [N, H, T, d], computed once for any number of captions."""
        n, t, dim = frames.shape
        f = self.layer_norm1(frames)
        k = self.k_proj(f).view(n, t, self.heads, dim // self.heads).transpose(1, 2)
        v = self.v_proj(f).view(n, t, self.heads, dim // self.heads).transpose(1, 2)
        return k, v

    def attend(self, text: torch.Tensor, keys_values: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """text [M, D] and `keys_values(frames)` -> every video pooled by every caption [N, M, D]."""
        k, v = keys_values  # [N, H, T, d]
        m, dim = text.shape
        q = self.q_proj(self.layer_norm1(text)).view(m, self.heads, dim // self.heads)  # [M, H, d]
        logits = torch.einsum("mhd,nhtd->nhmt", q, k) / math.sqrt(dim // self.heads)  # [N, H, M, T]
        attention = torch.einsum("nhmt,nhtd->nmhd", logits.softmax(dim=-1), v).reshape(v.shape[0], m, dim)
        a = self.layer_norm2(self.out_proj(attention))  # [N, M, D]
        return self.layer_norm3(a + self.dropout(self.linear_proj(a)))

    def forward(self, text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """text [M, D], frames [N, T, D] -> pooled videos [N, M, D] (X-Pool's output layout)."""
        return self.attend(text, self.keys_values(frames))


class XPoolHooks(TowerHooks):
    """The towers stay CLIP's; the video read-out is the text-conditioned pooling."""

    text_conditioned = True

    def __init__(self, dim: int, heads: int, dropout: float, eval_chunk: int):
        super().__init__()
        self.pool = TextConditionedPooling(dim, heads, dropout)
        self.eval_chunk = eval_chunk

    def similarity(self, text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Cosine of each caption [M, D] with each video [N, T, D] pooled by that caption -> [M, N].

        Outside training the captions go `eval_chunk` at a time (peak memory O(N x chunk x D))."""
        return self.score_prepared(text, self.prepare_videos(frames))

    def prepare_videos(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What a caption-independent pass can compute of videos [N, T, D] once (a gallery, for every
        query): the keys and values [N, H, T, d]."""
        return self.pool.keys_values(frames)

    def score_prepared(self, text: torch.Tensor, prepared: tuple[torch.Tensor, torch.Tensor],
                       rows: torch.Tensor | None = None) -> torch.Tensor:
        """`similarity` of captions [M, D] with prepared videos (those at `rows` [K] only) -> [M, N or K]."""
        keys, values = prepared
        if rows is not None:
            keys, values = keys[rows], values[rows]
        chunk = text.shape[0] if self.training else self.eval_chunk
        text_unit = F.normalize(text, dim=-1)
        scores = []
        for start in range(0, text.shape[0], chunk):
            pooled = F.normalize(self.pool.attend(text[start:start + chunk], (keys, values)), dim=-1)  # [N, c, D]
            scores.append(torch.einsum("cd,ncd->cn", text_unit[start:start + chunk], pooled))
        return torch.cat(scores) if scores else text.new_zeros(0, keys.shape[0])


class XPoolTuning(TuningMethod):
    """Every CLIP tensor trains (method.lr) and the pooling head (method.lr_new)."""

    def __init__(self, heads: int = 1, dropout: float = 0.3, eval_chunk: int = 128):
        if heads < 1 or not 0 <= dropout < 1 or eval_chunk < 1:
            raise ConfigError(f"xpool: method.tuner.heads={heads} and eval_chunk={eval_chunk} must be >= 1, "
                              f"dropout={dropout} in [0, 1)")
        self.heads, self.dropout, self.eval_chunk = heads, dropout, eval_chunk

    def patterns(self) -> list[str]:
        return [r".*"]

    def make_hooks(self, model: CLIPVideoModel) -> XPoolHooks:
        return XPoolHooks(model.clip.config.projection_dim, self.heads, self.dropout, self.eval_chunk)
