"""Contrastive loss for text-video retrieval."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(
    text_emb: Tensor,
    video_emb: Tensor,
    logit_scale: Tensor,
    max_log_scale: float = math.log(100),
) -> Tensor:
    """Symmetric InfoNCE (CLIP loss) with the diagonal pairs as positives.

    Args:
        text_emb: [B, D] text embeddings, already L2-normalised (so the dot product is cosine).
        video_emb: [B, D] video embeddings, already L2-normalised; row i pairs with text row i.
        logit_scale: scalar log-temperature (CLIP's learned `logit_scale`); clamped at
            `max_log_scale` = ln(100) as in CLIP, so the temperature cannot run away. Below the
            clamp the gradient flows into it; at the clamp it is zero (clamp's subgradient).
        max_log_scale: upper bound of `logit_scale`.

    Returns:
        Scalar: mean of the text->video (row) and video->text (column) cross-entropies.
    """
    if text_emb.ndim != 2 or text_emb.shape != video_emb.shape:
        raise ValueError(
            f"text_emb and video_emb must both be [B, D] with equal shapes, got "
            f"{tuple(text_emb.shape)} and {tuple(video_emb.shape)}"
        )
    # Float32 logits: with scale up to 100 and fp16/bf16 inputs, the logits' rounding error
    # (bf16 keeps ~3 significant digits) and log-sum-exp over the batch would distort the
    # softmax; the [B, B] matrix is tiny, so the upcast costs nothing.
    return info_nce_scores(text_emb.float() @ video_emb.float().T, logit_scale, max_log_scale)


def info_nce_scores(scores: Tensor, logit_scale: Tensor, max_log_scale: float = math.log(100)) -> Tensor:
    """Symmetric InfoNCE from cosine scores [B_text, B_video] (diagonal positives): what `info_nce`
    computes once the scores exist, and X-Pool's loss, whose scores pool each video per caption."""
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square [B, B] matrix, got {tuple(scores.shape)}")
    scale = logit_scale.float().clamp(max=max_log_scale).exp()
    logits = scale * scores.float()  # [B_text, B_video]
    targets = torch.arange(logits.shape[0], device=logits.device)
    loss_t2v = F.cross_entropy(logits, targets)  # each text against all videos
    loss_v2t = F.cross_entropy(logits.T, targets)  # each video against all texts
    return (loss_t2v + loss_v2t) / 2
