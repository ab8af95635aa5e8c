"""Non-finite numbers never become results: embeddings with NaN/inf are refused, not ranked.

Nothing scores strictly above NaN, so an all-NaN model would put every query's own video first
and report R@1 100; the check stops that before any metric or gallery is made.
"""
from __future__ import annotations

import torch

from vop.errors import UserError


class NonFiniteError(UserError, ValueError):
    """Embeddings (or a gallery) hold NaN or inf values."""


def require_finite(emb: torch.Tensor, what: str, where: str) -> None:
    """Raise NonFiniteError if any row of `emb` [N, D] holds NaN/inf; `what` names the tower."""
    if emb.numel() == 0:
        return
    bad = int((~torch.isfinite(emb)).any(dim=-1).sum())
    if bad:
        raise NonFiniteError(
            f"{where}: {bad} of {emb.shape[0]} {what} embeddings hold NaN or inf values, so no metric or "
            "ranking is computed. The model's weights are not finite (a run that diverged, e.g. a NaN "
            "learning rate); train again with a lower method.lr / method.lr_new or evaluate an earlier checkpoint")
