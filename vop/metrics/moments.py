"""Moment retrieval metrics: a caption finds a time span, in one video or among a corpus of videos.

- `temporal_iou`: intersection over union of [start, end] spans in seconds (continuous time).
- `vcmr_recall`: video-corpus moment retrieval. A query's ranked list of (video, span) moments is a
  hit at k for threshold t when one of its first k moments is in the query's video and overlaps the
  ground-truth span with temporal IoU >= t. R@k at IoU 0.5 and 0.7 as in TVR / DiDeMo-VCMR papers,
  in percent.
- `didemo_localisation`: DiDeMo's single-video protocol (Hendricks et al., ICCV 2017, the
  LocalizingMoments repository's utils/eval.py). A video is cut into 5-second segments 0..5; the
  21 candidate moments are the spans (i, j), i <= j, of whole segments, and times are inclusive
  segment indices, so [1, 1] is seconds 5-10 and the IoU of segment spans counts segments
  (intersection + 1 over union + 1). Each query has one span per annotator (4, sometimes more);
  Rank@1 / Rank@5 count queries whose mean rank over the 3 best-ranked annotator spans is <= 1 / 5,
  and mIoU averages the top-1 prediction's 3 best IoUs with the annotator spans. In percent.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import torch
from torch import Tensor

VCMR_KS = (1, 5, 10, 100)
VCMR_IOUS = (0.5, 0.7)
DIDEMO_SEGMENTS = 6  # 5-second segments of a DiDeMo video (videos are cut at 30 s)
DIDEMO_SECONDS = 5.0
# DiDeMo's 21 candidate moments (first, last segment), single segments first, as the authors list them;
# the order only decides between equal scores.
DIDEMO_MOMENTS: tuple[tuple[int, int], ...] = tuple(
    [(i, i) for i in range(DIDEMO_SEGMENTS)] + list(combinations(range(DIDEMO_SEGMENTS), 2)))
BEST_ANNOTATORS = 3  # DiDeMo scores the 3 annotator spans a prediction agrees with best


def temporal_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of spans a [..., 2] and b [..., 2] (start, end in seconds; broadcast) -> [...]; 0 where the union is 0."""
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def vcmr_recall(pred_video: Tensor, pred_span: Tensor, gt_video: Tensor, gt_span: Tensor,
                ks: Sequence[int] = VCMR_KS, ious: Sequence[float] = VCMR_IOUS) -> dict[str, float]:
    """R@k at temporal IoU t (percent) for ranked moments pred_video [Q, K] (-1 pads a short list),
    pred_span [Q, K, 2] against gt_video [Q] and gt_span [Q, 2]; keys `R@{k}_IoU{t}`. A k beyond K
    counts the K moments there are."""
    if pred_video.ndim != 2 or pred_span.shape != (*pred_video.shape, 2):
        raise ValueError(f"expected pred_video [Q, K] and pred_span [Q, K, 2], got {tuple(pred_video.shape)} "
                         f"and {tuple(pred_span.shape)}")
    if gt_video.shape != pred_video.shape[:1] or gt_span.shape != (len(gt_video), 2):
        raise ValueError(f"expected gt_video [Q] and gt_span [Q, 2] for Q={len(pred_video)}, got "
                         f"{tuple(gt_video.shape)} and {tuple(gt_span.shape)}")
    if not len(pred_video):
        raise ValueError("vcmr_recall needs at least one query")
    same_video = pred_video == gt_video[:, None]                                  # [Q, K]
    overlap = temporal_iou(pred_span.double(), gt_span.double()[:, None, :])      # [Q, K]
    out = {}
    for t in ious:
        hit = same_video & (overlap >= t)                                         # [Q, K]
        for k in ks:
            out[f"R@{k}_IoU{t}"] = 100.0 * hit[:, :k].any(1).double().mean().item()
    return out


def didemo_iou(pred: tuple[int, int], gt: Sequence[int]) -> float:
    """IoU of two spans of whole segments, inclusive (first, last) indices."""
    inter = max(0, min(pred[1], gt[1]) + 1 - max(pred[0], gt[0]))
    union = max(pred[1], gt[1]) + 1 - min(pred[0], gt[0])
    return inter / union


def didemo_localisation(scores: Tensor, times: Sequence[Sequence[Sequence[int]]]) -> dict[str, float]:
    """Rank@1, Rank@5 and mIoU (percent) of scores [Q, 21] over DIDEMO_MOMENTS against each query's
    annotator spans `times` (DiDeMo's `times`: a list of [first, last] segment pairs per query)."""
    if scores.ndim != 2 or scores.shape[1] != len(DIDEMO_MOMENTS) or len(times) != len(scores):
        raise ValueError(f"expected scores [Q, {len(DIDEMO_MOMENTS)}] and Q lists of times, got "
                         f"{tuple(scores.shape)} and {len(times)}")
    if not len(scores):
        raise ValueError("didemo_localisation needs at least one query")
    order = torch.argsort(scores, dim=1, descending=True, stable=True).tolist()  # candidate indices, best first
    position = {moment: i for i, moment in enumerate(DIDEMO_MOMENTS)}
    rank1 = rank5 = iou_sum = 0.0
    for ranked, spans in zip(order, times):
        rank_of = {c: r + 1 for r, c in enumerate(ranked)}           # candidate -> 1-based rank
        spans = [tuple(int(v) for v in s) for s in spans]
        unknown = [s for s in spans if s not in position]
        if unknown:
            raise ValueError(f"DiDeMo times must be (first, last) segments 0..5 with first <= last, got {unknown[0]}")
        ranks = sorted(rank_of[position[s]] for s in spans)[:BEST_ANNOTATORS]
        mean_rank = sum(ranks) / len(ranks)
        rank1 += mean_rank <= 1
        rank5 += mean_rank <= 5
        top = DIDEMO_MOMENTS[ranked[0]]
        ious = sorted(didemo_iou(top, s) for s in spans)[-BEST_ANNOTATORS:]
        iou_sum += sum(ious) / len(ious)
    q = len(scores)
    return {"Rank@1": 100.0 * rank1 / q, "Rank@5": 100.0 * rank5 / q, "mIoU": 100.0 * iou_sum / q}


def didemo_seconds(span: Sequence[int]) -> tuple[float, float]:
    """A DiDeMo (first, last) segment span in seconds: [5 * first, 5 * (last + 1))."""
    return DIDEMO_SECONDS * span[0], DIDEMO_SECONDS * (span[1] + 1)


def didemo_segments(start: float, end: float) -> tuple[int, int]:
    """The (first, last) segments of a span in seconds that starts on a segment and ends on one (or, cut at
    a video's end, inside its last segment)."""
    return round(start / DIDEMO_SECONDS), math.ceil(end / DIDEMO_SECONDS - 1e-6) - 1
