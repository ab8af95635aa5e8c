"""Video-corpus moment retrieval (VCMR) measured on a moment gallery whose captions carry their
ground-truth spans (synthetic_long, DiDeMo): each caption ranks every moment of the gallery, the
ranking goes through the same temporal NMS as a query (vop/retrieval/moments.py; no per-video cap
unless one is given, as in TVR's and DiDeMo's corpus protocols),
and `vcmr_recall` (vop/metrics/moments.py) counts a hit at k when one of the first k moments is in
the caption's video with temporal IoU >= 0.5 / 0.7.

Chance is what a uniformly random order of the gallery's moments scores (before NMS): with N
moments of which h are hits for a caption, R@k by chance is 1 - C(N - h, k) / C(N, k), averaged
over the captions.

A gallery of DiDeMo's candidate moments (`moments.split=didemo`, captions with every annotator's span)
is also scored for moment localisation in the caption's own video, as DiDeMo's authors define it
(`didemo_localisation`: Rank@1, Rank@5, mIoU); a candidate a short video lacks scores below every other,
and chance is the mean of CHANCE_DRAWS random orders of the candidates there are.
"""
from __future__ import annotations

import math

import torch

from vop.errors import InputError
from vop.metrics.moments import (DIDEMO_MOMENTS, VCMR_IOUS, VCMR_KS, didemo_localisation, didemo_segments,
                                 temporal_iou, vcmr_recall)
from vop.retrieval.gallery import Gallery
from vop.retrieval.moments import check_nms, rank_moments, video_numbers


def moment_queries(gallery: Gallery) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The captions with a ground-truth span: (caption rows, their video numbers [Q], spans [Q, 2])."""
    where = f"gallery={gallery.source}"
    if gallery.spans is None:
        raise InputError(f"{where} is a whole-video gallery: VCMR needs a moment gallery (retrieve.py action=build "
                         "... moments.window=<seconds> moments.stride=<seconds>)")
    spans = gallery.caption_spans or []
    queries = [c for c, s in enumerate(spans) if s is not None and gallery.caption_video[c] >= 0]
    if not queries:
        raise InputError(f"{where} has no caption with a ground-truth time span (info.caption_spans): build it from "
                         "a data set whose captions carry them (data=synthetic_long, didemo)")
    numbers = video_numbers(gallery.video_ids, gallery.video_paths)
    gt_video = numbers[torch.tensor([gallery.caption_video[c] for c in queries])]
    gt_span = torch.tensor([spans[c] for c in queries], dtype=torch.float64)
    return queries, gt_video, gt_span


def chance_recall(hits: torch.Tensor, total: int, k: int) -> float:
    """Mean over queries of 1 - C(total - h, k) / C(total, k), h = hits [Q]: a random order's R@k, percent."""
    k = min(k, total)
    missed = [math.exp(math.lgamma(total - h + 1) - math.lgamma(total - h - k + 1) - math.lgamma(total + 1)
                       + math.lgamma(total - k + 1)) if total - h >= k else 0.0 for h in hits.tolist()]
    return 100.0 * (1.0 - sum(missed) / len(missed))


def evaluate_moments(gallery: Gallery, nms_iou: float = 0.5, per_video: int | None = None, ks=VCMR_KS,
                     ious=VCMR_IOUS, chunk: int = 256) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics, chance) of VCMR over `gallery`: keys `R@{k}_IoU{t}` in percent; `per_video`: at most this
    many moments of one video in a ranking (None: no cap)."""
    per_video = len(gallery.video_ids) if per_video is None else per_video
    check_nms(nms_iou, per_video)
    if gallery.frame_emb is not None:
        raise InputError(f"gallery={gallery.source} was built with a text-conditioned pooling (method=xpool): its "
                         "moments are scored per caption by the model, which this evaluation does not load")
    queries, gt_video, gt_span = moment_queries(gallery)
    numbers, spans, depth = video_numbers(gallery.video_ids, gallery.video_paths), gallery.spans, max(ks)
    every = torch.arange(len(numbers))
    pred_video = torch.full((len(queries), depth), -1, dtype=torch.long)
    pred_span = torch.zeros(len(queries), depth, 2)
    for start in range(0, len(queries), chunk):
        scores = gallery.text_emb[queries[start:start + chunk]] @ gallery.video_emb.T  # [q, N]
        for i, row_scores in enumerate(scores, start):
            kept = rank_moments(row_scores, every, numbers, spans, depth, nms_iou, per_video)
            pred_video[i, :len(kept)], pred_span[i, :len(kept)] = numbers[kept], spans[kept]
    metrics = vcmr_recall(pred_video, pred_span, gt_video, gt_span, ks, ious)
    overlap = temporal_iou(spans.double()[None], gt_span[:, None])  # [Q, N]
    same = numbers[None] == gt_video[:, None]                        # [Q, N]
    chance = {f"R@{k}_IoU{t}": chance_recall((same & (overlap >= t)).sum(1), len(numbers), k)
              for t in ious for k in ks}
    return metrics, chance


CHANCE_DRAWS = 20


def localisation_scores(gallery: Gallery) -> tuple[torch.Tensor, list[list[tuple[int, int]]]]:
    """Per caption with annotator spans: its scores [Q, 21] of its own video's DiDeMo candidates (-inf where
    the video lacks one) and the annotators' (first, last) segments."""
    where = f"gallery={gallery.source}"
    if gallery.spans is None or (gallery.moments or {}).get("split") != "didemo":
        raise InputError(f"{where}: localisation needs a gallery of DiDeMo's candidate moments (retrieve.py "
                         "action=build data=didemo data.splits.queries=moments moments.split=didemo)")
    times = gallery.caption_times or []
    queries = [c for c, t in enumerate(times) if t and gallery.caption_video[c] >= 0]
    if not queries:
        raise InputError(f"{where} has no caption with annotator spans (info.caption_times): build it from "
                         "data=didemo data.splits.queries=moments")
    candidate = {m: i for i, m in enumerate(DIDEMO_MOMENTS)}
    scores = torch.full((len(queries), len(DIDEMO_MOMENTS)), float("-inf"))
    for q, c in enumerate(queries):
        owner = gallery.caption_video[c]
        rows = gallery.video_rows[(gallery.video_ids[owner], gallery.video_paths[owner])]
        columns = [candidate[didemo_segments(*gallery.spans[r].tolist())] for r in rows]
        scores[q, columns] = gallery.text_emb[c] @ gallery.video_emb[rows].T
    return scores, [[didemo_segments(*span) for span in times[c]] for c in queries]


def evaluate_localisation(gallery: Gallery) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics, chance) of DiDeMo's moment localisation over `gallery`: Rank@1, Rank@5, mIoU in percent."""
    scores, times = localisation_scores(gallery)
    metrics = didemo_localisation(scores, times)
    gen = torch.Generator().manual_seed(0)
    draws = [didemo_localisation(torch.where(scores.isinf(), scores, torch.rand(scores.shape, generator=gen)), times)
             for _ in range(CHANCE_DRAWS)]
    return metrics, {k: sum(d[k] for d in draws) / CHANCE_DRAWS for k in metrics}
