"""Non-finite numbers never become results: embeddings with NaN/inf are refused, not ranked.

Nothing scores strictly above NaN, so an all-NaN model would put every query's own video first
and report R@1 100; the check stops that before any metric or gallery is made.
"""
from __future__ import annotations

import torch

from vop.engine import distributed
from vop.errors import UserError


class NonFiniteError(UserError, ValueError):
    """Embeddings (or a gallery) hold NaN or inf values."""


def nonfinite_rows(emb: torch.Tensor) -> int:
    """How many rows of `emb` [N, D] hold a NaN or inf."""
    return int((~torch.isfinite(emb)).any(dim=-1).sum()) if emb.numel() else 0


def raise_if_nonfinite(bad: int, total: int, what: str, where: str) -> None:
    """NonFiniteError if `bad` of `total` rows of the `what` embeddings are not finite."""
    if bad:
        raise NonFiniteError(
            f"{where}: {bad} of {total} {what} embeddings hold NaN or inf values, so no metric or "
            "ranking is computed. The model's weights are not finite (a run that diverged, e.g. a NaN "
            "learning rate); train again with a lower method.lr / method.lr_new or evaluate an earlier checkpoint")


def require_finite(emb: torch.Tensor, what: str, where: str) -> None:
    """Raise NonFiniteError if any row of `emb` [N, D] holds NaN/inf; `what` names the tower."""
    raise_if_nonfinite(nonfinite_rows(emb), emb.shape[0], what, where)


def require_finite_on_every_rank(video_emb: torch.Tensor, text_emb: torch.Tensor, where: str) -> None:
    """Evaluation's check, counted over every rank: under DDP all of them stop with the same message
    (none raises alone while the others wait for it in the metric's gather)."""
    counts = distributed.sum_over_ranks(torch.tensor(
        [nonfinite_rows(video_emb), video_emb.shape[0], nonfinite_rows(text_emb), text_emb.shape[0]],
        dtype=torch.float64, device=video_emb.device))
    bad_videos, videos, bad_texts, texts = (int(c) for c in counts.tolist())
    raise_if_nonfinite(bad_videos, videos, "video", where)
    raise_if_nonfinite(bad_texts, texts, "caption", where)
