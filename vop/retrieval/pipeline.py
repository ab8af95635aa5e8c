"""Query a gallery with a text (-> videos, t2v) or a video file (-> captions, v2t)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig

from vop.engine.finite_embeddings import require_finite
from vop.errors import InputError, MissingFileError
from vop.retrieval.folder import is_video_file
from vop.retrieval.gallery import Gallery
from vop.retrieval.index import TorchIndex
from vop.retrieval.query_encoder import Encoder


@dataclass
class RetrievalResult:
    """Ranked gallery items for one query, best first.

    t2v: `ids` are video ids; v2t: `ids` are captions. `rows` index the gallery's videos (t2v) or
    captions (v2t); `video_ids` names the video of each hit in both modes.
    """

    query: str
    mode: str  # "t2v" or "v2t"
    ids: list[str]
    scores: list[float]
    rows: list[int]
    video_ids: list[str]

    def __str__(self) -> str:
        lines = [f"{self.mode} query: {self.query}"]
        lines += [f"{i + 1:3d}. {score:.4f}  {item}" for i, (item, score) in enumerate(zip(self.ids, self.scores))]
        return "\n".join(lines)


def query_mode(query: str | Path) -> str:
    """A `Path`, or a string ending in a video suffix (.mp4, ...), is a video query; other strings are text."""
    if isinstance(query, Path) or is_video_file(str(query)):
        if not Path(query).is_file():
            raise MissingFileError(f"query video {query}: no such file (a query ending in a video suffix is "
                                    "read as a video file)")
        return "v2t"
    return "t2v"


class RetrievalPipeline:
    """`RetrievalPipeline.from_gallery("g.safetensors")("a red circle moves left")` -> RetrievalResult."""

    def __init__(self, encoder: Encoder, gallery: Gallery, index: Callable[[torch.Tensor], object] = TorchIndex,
                 topk: int = 5, gallery_path: str | Path = ""):
        gallery.check(encoder, gallery_path)
        self.encoder, self.gallery, self.topk = encoder, gallery, topk
        self.video_index = index(gallery.video_emb)
        # Captions are optional (a folder of videos without a caption file): no v2t then.
        self.text_index = index(gallery.text_emb) if gallery.captions else None

    @classmethod
    def from_gallery(cls, gallery: str | Path, **kwargs) -> "RetrievalPipeline":
        """Query with the encoder the gallery was built with (rebuilt from its stored config)."""
        loaded = Gallery.load(gallery)
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
        return cls(Encoder.from_run(run), Gallery.load(gallery), gallery_path=gallery, **kwargs)

    def __call__(self, query: str | Path, topk: int | None = None) -> RetrievalResult:
        k = topk or self.topk
        if not str(query).strip():
            raise InputError(f"query={str(query)!r} is empty: give a text (query=\"a red circle moves left\") or a "
                             "video file")
        mode = query_mode(query)
        if mode == "t2v":
            emb = self.encoder.encode_texts([str(query)])  # [1, D]
            require_finite(emb, "query text", f"query {query}")  # NaN would rank an arbitrary video first
            self.gallery.check_width(emb)
            scores, rows = self.video_index.search(emb, k)  # [1, k]
            rows = rows[0].tolist()
            ids = [self.gallery.video_ids[r] for r in rows]
            return RetrievalResult(str(query), mode, ids, scores[0].tolist(), rows, ids)
        if self.text_index is None:
            raise InputError("this gallery holds no captions, so a video query has nothing to rank; build it "
                             "from a dataset split or with captions=<file>")
        emb = self.encoder.encode_video_files([query])  # [1, D]
        require_finite(emb, "query video", f"query {query}")
        self.gallery.check_width(emb)
        scores, rows = self.text_index.search(emb, k)  # [1, k]
        rows = rows[0].tolist()
        owners = [self.gallery.video_ids[self.gallery.caption_video[r]] if self.gallery.caption_video[r] >= 0 else ""
                  for r in rows]  # a ModelScope gallery may not say which video a caption describes
        return RetrievalResult(str(query), mode, [self.gallery.captions[r] for r in rows], scores[0].tolist(),
                               rows, owners)
