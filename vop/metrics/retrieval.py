"""Text-video retrieval metrics: R@1/5/10, median rank, mean rank, in both directions.

Conventions (shared by every function here):
- Ranks are 0-based: rank = number of gallery items scored STRICTLY higher than the ground
  truth. Every query yields exactly one rank, however many items tie, so ties can never add
  extra hits (the failure of sort-and-search code such as `np.where(sorted - gt == 0)`, which
  returns one hit per tied item and lets a query count several times). Items tied with the
  ground truth do not push it down ("optimistic" ties); the result never depends on gallery
  order or on how a sort broke ties. With continuous embeddings exact ties practically never
  occur; they matter for degenerate models (e.g. constant embeddings rank everything 0).
- Similarity = dot product of the given embeddings (pass L2-normalised ones for cosine).
- `t2v_ranks` / `v2t_ranks` build the matrix `chunk_size` queries at a time, so an [M, N] matrix never
  sits in memory at once: peak extra memory is O(chunk_size * max(M, N)). `RetrievalMetrics` keeps the
  whole [M, N] matrix (float32: 4 MB for MSR-VTT 1k-A, ~100 MB for ActivityNet's 4,917 videos), since
  the run saves it and post-processing reads it whole; only its matmul temporaries are chunked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from vop.metrics.scores import RECALL_KS, metrics_from_scores, summarize  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


def _check_pairs(text_emb: Tensor, video_emb: Tensor, text_video: Tensor, chunk_size: int) -> None:
    if text_emb.ndim != 2 or video_emb.ndim != 2 or text_emb.shape[1] != video_emb.shape[1]:
        raise ValueError(
            f"expected text_emb [M, D] and video_emb [N, D], got {tuple(text_emb.shape)} and "
            f"{tuple(video_emb.shape)}"
        )
    if text_video.shape != (text_emb.shape[0],):
        raise ValueError(
            f"text_video must be [M] = [{text_emb.shape[0]}], got {tuple(text_video.shape)}"
        )
    if text_video.numel() and (text_video.min() < 0 or text_video.max() >= video_emb.shape[0]):
        raise ValueError(f"text_video must index videos in [0, {video_emb.shape[0]})")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def t2v_ranks(
    text_emb: Tensor, video_emb: Tensor, text_video: Tensor, chunk_size: int = 1024
) -> Tensor:
    """Rank of each caption's ground-truth video among all videos.

    Args:
        text_emb: [M, D] caption embeddings (queries).
        video_emb: [N, D] video embeddings (gallery).
        text_video: [M] long, row of `video_emb` that caption m describes.
        chunk_size: captions scored per matmul.

    Returns:
        [M] long, 0-based rank = number of videos with strictly higher similarity.
    """
    _check_pairs(text_emb, video_emb, text_video, chunk_size)
    text_video = text_video.to(text_emb.device)
    ranks = []
    for start in range(0, text_emb.shape[0], chunk_size):
        sims = text_emb[start : start + chunk_size] @ video_emb.T  # [c, N]
        rows = torch.arange(sims.shape[0], device=sims.device)
        # Read the positive's score from the same matrix so it compares bit-exactly with itself.
        positive = sims[rows, text_video[start : start + chunk_size]]  # [c]
        ranks.append((sims > positive[:, None]).sum(dim=1))
    return torch.cat(ranks).long() if ranks else torch.zeros(0, dtype=torch.long)


def v2t_ranks(
    text_emb: Tensor, video_emb: Tensor, text_video: Tensor, chunk_size: int = 1024
) -> Tensor:
    """Rank of each video's own captions among the videos' caption groups (X-Pool's `v2t_metrics`).

    Every video in the gallery is scored by its best caption (max over the captions of that
    video); a query video's rank is the number of videos whose best caption scores strictly
    higher than its own best caption. With one caption per video this is the plain caption rank.

    Args:
        text_emb: [M, D] caption embeddings (gallery).
        video_emb: [N, D] video embeddings (queries).
        text_video: [M] long, row of `video_emb` that caption m describes.
        chunk_size: videos scored per matmul.

    Returns:
        [N] long, 0-based ranks. Raises if some video has no caption (its rank is undefined).
    """
    _check_pairs(text_emb, video_emb, text_video, chunk_size)
    text_video = text_video.to(video_emb.device)
    num_videos = video_emb.shape[0]
    captions_per_video = torch.bincount(text_video, minlength=num_videos)
    if (captions_per_video == 0).any():
        missing = int((captions_per_video == 0).sum())
        raise ValueError(f"{missing} of {num_videos} videos have no caption; video->text rank undefined")
    ranks = []
    for start in range(0, num_videos, chunk_size):
        sims = video_emb[start : start + chunk_size] @ text_emb.T  # [c, M]
        groups = sims.new_full((sims.shape[0], num_videos), float("-inf"))
        groups.scatter_reduce_(1, text_video.expand_as(sims), sims, reduce="amax")  # [c, N] best caption per video
        rows = torch.arange(sims.shape[0], device=sims.device)
        positive = groups[rows, rows + start]  # [c]
        ranks.append((groups > positive[:, None]).sum(dim=1))
    return torch.cat(ranks).long() if ranks else torch.zeros(0, dtype=torch.long)


class RetrievalMetrics(Metric):
    """Accumulates caption and video embeddings, then computes t2v and v2t retrieval metrics.

    Captions and videos may arrive in separate `update` calls (the evaluator encodes all videos
    with one loader, then all captions with another), in any order and on any DDP rank.

    `compute()` returns floats under `t2v_R@1, t2v_R@5, t2v_R@10, t2v_MdR, t2v_MnR` and the
    same with `v2t_`. Videos are ordered by `video_index` and duplicate indices dropped (DDP
    samplers pad by repeating samples); if captions carry a `text_index`, duplicated captions
    are dropped the same way. Each caption's `text_video` must be a `video_index` seen.
    """

    full_state_update = False
    higher_is_better = None  # mixed: recalls up, ranks down

    def __init__(self, chunk_size: int = 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.last_similarity: Similarity | None = None  # the matrix the last compute() ranked
        for name in ("text_emb", "text_video", "text_index", "video_emb", "video_index"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        text_emb: Tensor | None = None,
        text_video: Tensor | None = None,
        video_emb: Tensor | None = None,
        video_index: Tensor | None = None,
        text_index: Tensor | None = None,
    ) -> None:
        """Add captions (`text_emb` [B, D] + `text_video` [B]) and/or videos (`video_emb`
        [B, D] + `video_index` [B]). `text_index` [B] (optional, caption ids) lets duplicated
        captions from padded DDP samplers be dropped; give it with every caption batch or none."""
        if (text_emb is None) != (text_video is None):
            raise ValueError("text_emb and text_video must be given together")
        if (video_emb is None) != (video_index is None):
            raise ValueError("video_emb and video_index must be given together")
        if text_index is not None and text_emb is None:
            raise ValueError("text_index needs text_emb and text_video")
        if text_emb is not None:
            _check_batch("text", text_emb, text_video, text_index)
            self.text_emb.append(text_emb.detach())
            self.text_video.append(text_video.detach().long())
            if text_index is not None:
                self.text_index.append(text_index.detach().long())
        if video_emb is not None:
            _check_batch("video", video_emb, video_index)
            self.video_emb.append(video_emb.detach())
            self.video_index.append(video_index.detach().long())

    def compute(self) -> dict[str, float]:
        """Deduplicate, align captions to videos, build the similarity matrix, and summarise ranks both ways."""
        sim = self.similarity()
        self.last_similarity = sim  # built from every rank's embeddings: torchmetrics syncs around compute() only
        return metrics_from_scores(sim.text_video, sim.scores, sim.scores.T)

    def similarity(self) -> "Similarity":
        """The [captions x videos] similarity matrix (float32), captions and videos ordered by id, one copy each,
        from the states as they are: under DDP call compute() (which gathers every rank's states first) and
        read `last_similarity`."""
        if _count(self.text_emb) == 0 or _count(self.video_emb) == 0:
            raise RuntimeError("RetrievalMetrics.compute() needs at least one caption and one video")
        # Ids may have been passed on another device than the embeddings; align them once.
        video_emb = _cat(self.video_emb)
        device = video_emb.device
        video_emb, video_ids = _unique_by_index(video_emb, _cat(self.video_index).to(device))
        text_emb, text_video = _cat(self.text_emb).to(device), _cat(self.text_video).to(device)
        caption_ids = torch.arange(text_emb.shape[0], device=device)
        if _count(self.text_index):
            text_index = _cat(self.text_index).to(device)
            if text_index.shape[0] != text_emb.shape[0]:
                raise ValueError("text_index was given for some caption batches but not all")
            keep = _first_occurrences(text_index)
            text_emb, text_video, caption_ids = text_emb[keep], text_video[keep], text_index[keep]
        text_to_row = _rows_of(text_video, video_ids)
        text_emb, video_emb = text_emb.float(), video_emb.float()  # fp16 sums lose rank precision
        scores = self._halving_on_oom(lambda chunk: similarity_matrix(text_emb, video_emb, chunk))
        return Similarity(scores, text_to_row, caption_ids, video_ids, video_emb)

    def _halving_on_oom(self, build):
        """Run `build(chunk_size)`; out of memory, halve `chunk_size` (kept for later calls) and retry.

        Runs after the DDP sync on every rank's own copy, with no collective inside, so a rank
        that retries cannot leave the others waiting."""
        while True:
            try:
                return build(self.chunk_size)
            except torch.OutOfMemoryError:
                if self.chunk_size == 1:
                    raise
                self.chunk_size = max(self.chunk_size // 2, 1)
                log.warning("retrieval metrics ran out of memory; retrying with chunk_size=%d", self.chunk_size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()


@dataclass
class Similarity:
    """An evaluation's similarity matrix and what its rows and columns are."""
    scores: Tensor       # [M, N] float32 cosine similarity, caption m vs video n
    text_video: Tensor   # [M] long, the column (video) that caption m describes
    caption_ids: Tensor  # [M] long, the split's caption index of each row
    video_ids: Tensor    # [N] long, the split's video index of each column
    video_emb: Tensor | None = None  # [N, D] the columns' embeddings (a bank of captions is scored against them)


def similarity_matrix(text_emb: Tensor, video_emb: Tensor, chunk_size: int = 1024) -> Tensor:
    """[M, N] = text_emb @ video_emb.T, `chunk_size` captions per matmul (the temporaries stay small)."""
    out = text_emb.new_empty((text_emb.shape[0], video_emb.shape[0]))
    for start in range(0, text_emb.shape[0], chunk_size):
        out[start:start + chunk_size] = text_emb[start:start + chunk_size] @ video_emb.T
    return out


def _check_batch(kind: str, emb: Tensor, ids: Tensor, extra: Tensor | None = None) -> None:
    if emb.ndim != 2:
        raise ValueError(f"{kind} embeddings must be [B, D], got {tuple(emb.shape)}")
    for tensor in (ids, extra):
        if tensor is not None and tensor.shape != (emb.shape[0],):
            raise ValueError(
                f"{kind} ids must be [B] = [{emb.shape[0]}], got {tuple(tensor.shape)}"
            )


def _cat(states: list[Tensor] | Tensor) -> Tensor:
    """Concatenate a "cat" state; after a DDP sync it may already be one tensor, and ranks that
    saw no data contribute empty tensors, which are skipped."""
    if isinstance(states, Tensor):
        return states
    return torch.cat([s for s in states if s.numel() > 0])


def _count(states: list[Tensor] | Tensor) -> int:
    if isinstance(states, Tensor):
        return states.shape[0] if states.numel() else 0
    return sum(s.shape[0] for s in states if s.numel() > 0)


def _first_occurrences(index: Tensor) -> Tensor:
    """Positions [U] of one copy of each distinct id, ordered by id."""
    unique_ids, inverse = torch.unique(index, sorted=True, return_inverse=True)
    positions = torch.arange(index.shape[0], device=index.device)
    # Scatter with amin keeps, for each id, its smallest position, i.e. the first copy.
    first = torch.full_like(unique_ids, index.shape[0])
    return first.scatter_reduce(0, inverse, positions, reduce="amin")


def _unique_by_index(emb: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Embeddings [U, D] and ids [U] ordered by id, one copy per id."""
    keep = _first_occurrences(index)
    return emb[keep], index[keep]


def _rows_of(text_video: Tensor, video_ids: Tensor) -> Tensor:
    """Map each caption's video id to its row among the sorted unique `video_ids`."""
    rows = torch.searchsorted(video_ids, text_video).clamp(max=video_ids.shape[0] - 1)
    missing = video_ids[rows] != text_video
    if missing.any():
        absent = torch.unique(text_video[missing])
        raise ValueError(
            f"{int(missing.sum())} captions refer to {absent.numel()} videos that were never "
            f"passed to update() (e.g. video_index {absent[:5].tolist()}); encode every video "
            "that a caption refers to"
        )
    return rows
