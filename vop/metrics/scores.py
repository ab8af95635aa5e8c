"""Ranks and metrics read from a score matrix that already exists (raw or post-processed).

`t2v_scores` is [M captions, N videos] (captions query videos); `v2t_scores` is [N videos, M captions]
(videos query captions). They are two matrices, not one and its transpose, because a post-processing
such as DSL normalises each direction over its own queries. Ranks follow vop/metrics/retrieval.py:
0-based, the number of items scored strictly higher than the ground truth; video->text scores every
gallery video by its best caption (X-Pool's `v2t_metrics`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

RECALL_KS = (1, 5, 10)


def summarize(ranks: Tensor) -> dict[str, float]:
    """R@K (% of ranks < K), MdR (median of rank+1, numpy semantics: mean of the two middle
    values for an even count) and MnR (mean of rank+1), as Python floats."""
    if ranks.numel() == 0:
        raise ValueError("cannot summarise an empty set of ranks")
    one_based = ranks.detach().cpu().numpy().astype(np.float64) + 1  # [Q]
    out = {f"R@{k}": float(100.0 * np.mean(one_based <= k)) for k in RECALL_KS}
    out["MdR"] = float(np.median(one_based))
    out["MnR"] = float(np.mean(one_based))
    return out


def _check(scores: Tensor, text_video: Tensor, rows: int, cols: int, what: str) -> None:
    if scores.ndim != 2 or scores.shape != (rows, cols):
        raise ValueError(f"{what} scores must be [{rows}, {cols}], got {tuple(scores.shape)}")


def t2v_ranks_from_scores(t2v_scores: Tensor, text_video: Tensor) -> Tensor:
    """[M] 0-based rank of each caption's video among the N videos of its row of `t2v_scores` [M, N]."""
    num_captions, num_videos = t2v_scores.shape
    _check(t2v_scores, text_video, text_video.shape[0], num_videos, "text->video")
    rows = torch.arange(num_captions, device=t2v_scores.device)
    positive = t2v_scores[rows, text_video]  # [M], read from the same matrix: compares bit-exactly
    return (t2v_scores > positive[:, None]).sum(dim=1).long()


def v2t_ranks_from_scores(v2t_scores: Tensor, text_video: Tensor, chunk_size: int = 1024) -> Tensor:
    """[N] 0-based rank of each video's own captions, `v2t_scores` [N videos, M captions]: every gallery
    video is scored by its best caption; a query's rank is the number of videos whose best caption beats
    its own best caption."""
    num_videos = v2t_scores.shape[0]
    _check(v2t_scores, text_video, num_videos, text_video.shape[0], "video->text")
    if (torch.bincount(text_video, minlength=num_videos) == 0).any():
        raise ValueError("some videos have no caption; video->text rank undefined")
    ranks = []
    for start in range(0, num_videos, chunk_size):
        sims = v2t_scores[start:start + chunk_size]  # [c, M]
        groups = sims.new_full((sims.shape[0], num_videos), float("-inf"))
        groups.scatter_reduce_(1, text_video.expand_as(sims), sims, reduce="amax")  # [c, N]
        rows = torch.arange(sims.shape[0], device=sims.device)
        positive = groups[rows, rows + start]  # [c]
        ranks.append((groups > positive[:, None]).sum(dim=1))
    return torch.cat(ranks).long()


def metrics_from_scores(text_video: Tensor, t2v_scores: Tensor | None = None,
                        v2t_scores: Tensor | None = None) -> dict[str, float]:
    """`t2v_R@1 ... t2v_MnR` from `t2v_scores` and `v2t_R@1 ... v2t_MnR` from `v2t_scores` (each when given)."""
    out: dict[str, float] = {}
    if t2v_scores is not None:
        out.update({f"t2v_{k}": v for k, v in summarize(t2v_ranks_from_scores(t2v_scores, text_video)).items()})
    if v2t_scores is not None:
        out.update({f"v2t_{k}": v for k, v in summarize(v2t_ranks_from_scores(v2t_scores, text_video)).items()})
    return out
