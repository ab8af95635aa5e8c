"""Turn retrieval results into result-page views (thumbnails, scores, ground truth)."""
from __future__ import annotations

from pathlib import Path

import torch

from vop.data.decoders.base import Decoder
from vop.data.split import Split
from vop.retrieval.gallery import Gallery
from vop.retrieval.html import Hit, QueryView, thumbnails
from vop.retrieval.index import TorchIndex
from vop.retrieval.moments import caption_truth
from vop.retrieval.pipeline import RetrievalResult


def result_view(result: RetrievalResult, gallery: Gallery, decoder: Decoder, thumb_frames: int = 4) -> QueryView:
    """Ground truth: for a text, the videos it captions in the gallery (exact match); for a video file,
    the captions of the gallery video with the same path."""
    if result.mode == "t2v":
        truth = truth_rows(gallery, result.query)
        spans = result.spans or [None] * len(result.rows)
        # A ModelScope gallery knows a video's path only where the dataset's videos are present.
        hits = [Hit(vid, s, thumbnails(decoder, gallery.video_paths[r], thumb_frames, span=span)
                    if gallery.video_paths[r] else [], r in truth, gallery.video_paths[r], gallery.first_caption(r),
                    span) for vid, s, r, span in zip(result.ids, result.scores, result.rows, spans)]
        return QueryView(result.query, "t2v", hits)
    same = [i for i, p in enumerate(gallery.video_paths) if p and Path(p).resolve() == Path(result.query).resolve()]
    hits = [Hit(text, s, [], gallery.caption_video[r] in same, path) for text, s, r, path in
            zip(result.ids, result.scores, result.rows, result.video_paths)]
    return QueryView(result.query, "v2t", hits, thumbnails(decoder, result.query, thumb_frames))


def truth_rows(gallery: Gallery, caption: str) -> set[int]:
    """The rows a gallery caption given as the query describes (vop/retrieval/moments.py caption_truth)."""
    return set().union(*(caption_truth(gallery, i) for i, c in enumerate(gallery.captions) if c == caption))


def example_views(split: Split, text_emb: torch.Tensor, video_emb: torch.Tensor, decoder: Decoder, count: int,
                  topk: int = 5, thumb_frames: int = 4, similarity=None) -> list[QueryView]:
    """`count` captions of `split` (evenly spaced) as text->video queries over its videos.

    text_emb [M, D] rows follow split.captions; video_emb [N, D] rows follow split.video_ids, or
    frame embeddings [N, T, D] scored by `similarity(text, frames) -> [q, N]` (a text-conditioned
    pooling: the model's own, exhaustive, as its evaluation ranks).
    """
    queries = torch.linspace(0, split.num_captions - 1, min(count, split.num_captions)).round().long().unique()
    if video_emb.ndim == 3:
        with torch.inference_mode():
            scores, rows = similarity(text_emb[queries.to(text_emb.device)], video_emb).float().cpu().topk(
                min(topk, video_emb.shape[0]), dim=1)  # [q, k]
    else:
        scores, rows = TorchIndex(video_emb.cpu()).search(text_emb.cpu()[queries], topk)  # [q, k]
    first: dict[int, str] = {}
    for text, owner in zip(split.captions, split.caption_video):
        first.setdefault(owner, text)
    views = []
    for q, s_row, r_row in zip(queries.tolist(), scores.tolist(), rows.tolist()):
        truth = split.caption_video[q]
        hits = [Hit(split.video_ids[r], s, thumbnails(decoder, split.video_paths[r], thumb_frames), r == truth,
                    str(split.video_paths[r]), first.get(r)) for s, r in zip(s_row, r_row)]
        views.append(QueryView(split.captions[q], "t2v", hits))
    return views
