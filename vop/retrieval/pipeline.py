"""Query a gallery with a text (-> videos, t2v) or a video file (-> captions, v2t)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig

from vop.data.caption_preview import PREVIEW_CHARS, caption_preview
from vop.data.video_files import VIDEO_SUFFIXES, is_video_file
from vop.engine.finite_embeddings import require_finite
from vop.errors import InputError, MissingFileError
from vop.retrieval.gallery import Gallery
from vop.retrieval.gallery_shards import load_gallery
from vop.retrieval.index import TorchIndex
from vop.retrieval.moments import check_nms, rank_moments, video_numbers
from vop.retrieval.query_encoder import Encoder
from vop.result_count import topk_problem

# A query that names a file is shown up to this many characters (a path, which the 80 of a caption
# would cut before its file name); a text query and the captions are shown by caption_preview.
PRINTED_PATH_CHARS = 300


@dataclass
class RetrievalResult:
    """Ranked gallery items for one query, best first.

    t2v: `ids` are video ids; v2t: `ids` are captions. `rows` index the gallery's videos (t2v) or
    captions (v2t); `video_ids` names the video of each hit in both modes, `video_paths` its file
    ("" where the gallery does not know it), `captions` the hit video's first caption in the gallery
    (t2v; None for a video without captions) or the hit caption itself (v2t). `spans`: a moment
    gallery's t2v hits are moments, each its video's (start, end) seconds; None for whole videos.
    """

    query: str
    mode: str  # "t2v" or "v2t"
    ids: list[str]
    scores: list[float]
    rows: list[int]
    video_ids: list[str]
    video_paths: list[str] = field(default_factory=list)
    captions: list[str | None] = field(default_factory=list)
    spans: list[tuple[float, float]] | None = None

    def __str__(self) -> str:
        shown = caption_preview(self.query, PRINTED_PATH_CHARS if self.mode == "v2t" else PREVIEW_CHARS)
        lines = [f"{self.mode} query: {shown}"]
        for i, (item, score) in enumerate(zip(self.ids, self.scores)):
            if self.mode == "v2t":  # the hits are captions
                owner = self.video_ids[i] if i < len(self.video_ids) else ""
                shown_item = caption_preview(item)
                lines.append(f"{i + 1:3d}. {score:.4f}  {shown_item}" + (f"  [{owner}]" if owner else ""))
                continue
            path = self.video_paths[i] if i < len(self.video_paths) else ""
            when = f"  {span_text(self.spans[i])}" if self.spans is not None else ""
            lines.append(f"{i + 1:3d}. {score:.4f}  {item}{when}" + (f"  {path}" if path else ""))
            caption = self.captions[i] if i < len(self.captions) else None
            if caption is not None:
                lines.append(f"{'':14}{json.dumps(caption_preview(caption), ensure_ascii=False)}")
        return "\n".join(lines)


def span_text(span: tuple[float, float]) -> str:
    """A moment's time span as printed: "12.0-15.0 s"."""
    return f"{span[0]:.1f}-{span[1]:.1f} s"


def query_mode(query: str | Path) -> str:
    """A `Path`, or a string ending in a video suffix (.mp4, ...), is a video query; other strings are text.

    A folder, or an existing file that is no video (by its suffix), is refused rather than searched
    as text."""
    text = str(query)
    shown = caption_preview(text, PRINTED_PATH_CHARS)
    if isinstance(query, Path) or is_video_file(text):
        path = Path(query).expanduser()
        if path.is_dir():
            raise InputError(f"query video {shown} is a folder; give one video file (or build a gallery of "
                             "the folder: retrieve.py action=build videos=<folder> gallery=<file>)")
        if not path.is_file():
            raise MissingFileError(f"query video {shown}: no such file (a query ending in a video suffix is "
                                   "read as a video file)")
        return "v2t"
    if len(text) < 4096 and _exists(text):  # a path is short; a long text is never one
        what = "a folder" if Path(text).expanduser().is_dir() else "a file whose suffix is no video suffix"
        raise InputError(f"query={shown} names {what}, so it is neither a text nor a video query; a video "
                         f"query is a file ending in one of {', '.join(VIDEO_SUFFIXES)}")
    return "t2v"


def _exists(text: str) -> bool:
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):  # a name too long or with a NUL byte is no path: a text
        return False


def check_topk(k: int) -> int:
    problem = topk_problem(k)
    if problem:
        raise InputError(f"topk={k!r}: {problem}")
    return k


class RetrievalPipeline:
    """`RetrievalPipeline.from_gallery("g.safetensors")("a red circle moves left")` -> RetrievalResult."""

    def __init__(self, encoder: Encoder, gallery: Gallery, index: Callable[[torch.Tensor], object] = TorchIndex,
                 topk: int = 5, gallery_path: str | Path = "", rerank_k: int = 100, nms_iou: float = 0.5,
                 per_video: int = 3):
        gallery.check(encoder, gallery_path)
        check_topk(topk)
        check_nms(nms_iou, per_video)
        self.nms_iou, self.per_video = nms_iou, per_video  # a moment gallery's hits (vop/retrieval/moments.py)
        self.video_number = video_numbers(gallery.video_ids, gallery.video_paths) if gallery.spans is not None else None
        if rerank_k < 0:
            raise InputError(f"rerank_k={rerank_k} must be >= 0 (0: score every video with the text-conditioned "
                             "pooling)")
        if encoder.model.text_conditioned and gallery.frame_emb is None:
            raise InputError(f"gallery {gallery_path} holds no frame embeddings, but method="
                             f"{encoder.identity['method']} pools a video's frames per query: rebuild it with this vop "
                             "(retrieve.py action=build), which keeps them")
        self.encoder, self.gallery, self.topk, self.rerank_k = encoder, gallery, topk, rerank_k
        self.device = next(encoder.model.parameters()).device
        self.prepared = None  # text-conditioned: the gallery's caption-independent part, once (X-Pool: keys, values)
        if gallery.frame_emb is not None:
            with torch.inference_mode():
                self.prepared = encoder.model.prepare_videos(gallery.frame_emb.to(self.device))
        self.video_index = index(gallery.video_emb)
        # Captions are optional (a folder of videos without a caption file): no v2t then.
        self.text_index = index(gallery.text_emb) if gallery.captions else None

    @classmethod
    def from_gallery(cls, gallery: str | Path, **kwargs) -> "RetrievalPipeline":
        """Query with the encoder the gallery was built with (rebuilt from its stored config); `gallery`: a
        gallery file or a sharded gallery's manifest."""
        loaded = load_gallery(gallery)
        return cls(Encoder(loaded.encoder_config(), ckpt=loaded.encoder.get("ckpt")), loaded,
                   gallery_path=gallery, **kwargs)

    @classmethod
    def from_modelscope(cls, folder: str | Path, overrides: list[str] = (), cfg: DictConfig | None = None,
                        **kwargs) -> "RetrievalPipeline":
        """The authors' ModelScope model folder: its model, and its precomputed MSR-VTT gallery.

        `overrides`: retrieve.py-style settings (e.g. ["model=clip_tiny"]) when `cfg` is not given."""
        from vop.retrieval.modelscope_gallery import modelscope_pipeline_parts

        encoder, gallery, topk = modelscope_pipeline_parts(folder, cfg, list(overrides))
        kwargs.setdefault("topk", topk)
        return cls(encoder, gallery, gallery_path=folder, **kwargs)

    @classmethod
    def from_run(cls, run: str | Path, gallery: str | Path, **kwargs) -> "RetrievalPipeline":
        """Query with a trained run's model; refused unless the gallery was built with it."""
        return cls(Encoder.from_run(run), load_gallery(gallery), gallery_path=gallery, **kwargs)

    def __call__(self, query: str | Path, topk: int | None = None) -> RetrievalResult:
        k = self.topk if topk is None else check_topk(topk)
        if not str(query).strip():
            raise InputError(f"query={str(query)!r} is empty: give a text (query=\"a red circle moves left\") or a "
                             "video file")
        mode = query_mode(query)
        if mode == "t2v":
            emb = self.encoder.encode_texts([str(query)])  # [1, D]
            require_finite(emb, "query text", f"query {caption_preview(str(query))}")  # NaN: an arbitrary video first
            self.gallery.check_width(emb)
            if self.video_number is None:
                scores, rows = self.search_videos(emb, k)  # [k], [k]
                scores, rows, spans = scores.tolist(), rows.tolist(), None
            else:
                scores, rows = self.search_moments(emb, k)
                spans = [tuple(self.gallery.spans[r].tolist()) for r in rows]
            ids = [self.gallery.video_ids[r] for r in rows]
            return RetrievalResult(str(query), mode, ids, scores, rows, ids,
                                   [self.gallery.video_paths[r] for r in rows],
                                   [self.gallery.first_caption(r) for r in rows], spans)
        if self.text_index is None:
            raise InputError("this gallery holds no captions, so a video query has nothing to rank; build it "
                             "from a dataset split or with captions=<file>")
        emb = self.encoder.encode_video_file(query)  # [1, D] ([1, T, D] frames: text-conditioned)
        require_finite(emb, "query video", f"query {query}")
        self.gallery.check_width(emb)
        if emb.ndim == 3:  # each caption pools the query video's frames: every caption is scored
            with torch.inference_mode():
                scores = self.encoder.model.similarity(self.gallery.text_emb.to(self.device), emb.to(self.device))
            scores, rows = scores[:, 0].cpu().topk(min(k, len(self.gallery.captions)))
        else:
            scores, rows = (r[0] for r in self.text_index.search(emb, k))  # [k]
        rows = rows.tolist()
        owners = [self.gallery.video_ids[self.gallery.caption_video[r]] if self.gallery.caption_video[r] >= 0 else ""
                  for r in rows]  # a ModelScope gallery may not say which video a caption describes
        videos = [self.gallery.caption_video[r] for r in rows]
        texts = [self.gallery.captions[r] for r in rows]
        return RetrievalResult(str(query), mode, texts, scores.tolist(), rows, owners,
                               [self.gallery.video_paths[v] if v >= 0 else "" for v in videos], list(texts))

    def search_videos(self, text: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A caption embedding [1, D] -> the top-k videos' scores and rows [k], best first: the index's
        exact top-k of mean-pooled embeddings, or `two_stage_topk` for a text-conditioned pooling."""
        if self.prepared is None:
            scores, rows = self.video_index.search(text, k)  # [1, k]
            return scores[0], rows[0]
        model = self.encoder.model
        with torch.inference_mode():
            return two_stage_topk(lambda t, rows: model.score_prepared(t.to(self.device), self.prepared,
                                                                      rows.to(self.device)).cpu(),
                                  text, self.video_index, len(self.gallery.video_ids), self.rerank_k, k)

    def search_moments(self, text: torch.Tensor, k: int) -> tuple[list[float], list[int]]:
        """A caption embedding [1, D] -> the top-k moments (scores, rows) after temporal NMS and the per-video
        cap: a shortlist of the best rows, widened until k moments survive or every row was looked at."""
        total = len(self.gallery.video_ids)
        want = min(total, 4 * k * self.per_video + 64)
        while True:
            scores, rows = self.search_videos(text, want)  # [want], [want]
            kept = rank_moments(scores, rows, self.video_number, self.gallery.spans, k, self.nms_iou, self.per_video)
            if len(kept) == k or want >= total:
                break
            want = min(total, want * 4)
        score_of = dict(zip(rows.tolist(), scores.tolist()))
        return [score_of[r] for r in kept], kept


def two_stage_topk(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], text: torch.Tensor, index,
                   num_videos: int, rerank_k: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k videos [k] (scores, rows) for one caption [1, D] under a text-conditioned pooling.

    Stage 1: `index` (over the videos' mean-pooled embeddings) shortlists the max(rerank_k, k)
    closest videos; stage 2: `score(text [1, D], rows [K]) -> [1, K]` (the caption pooling each
    shortlisted video's frames) ranks them. `rerank_k=0`, or one as large as the gallery, pools
    every video: the exhaustive ranking."""
    if rerank_k and rerank_k < num_videos:
        shortlist = index.search(text, max(rerank_k, k))[1][0]  # [K]
    else:
        shortlist = torch.arange(num_videos)
    scores = score(text, shortlist)[0].float()  # [K]
    best = scores.topk(min(k, len(shortlist)))
    return best.values, shortlist[best.indices]
