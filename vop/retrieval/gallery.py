"""A gallery: video and caption embeddings of one collection, on disk as one safetensors file.

The file holds `video_emb` [N, D], `text_emb` [M, D] and `caption_video` [M] as tensors, and in
its metadata the ids, paths and captions plus the encoder that built it (model, method,
checkpoint, weights fingerprint and its config, so the same encoder can be rebuilt to query).

Format 2 adds `frame_emb` [N, T, D]: the frame embeddings of an encoder whose video embedding
depends on the caption (method=xpool); `video_emb` then holds their mean (the shortlist of a
two-stage search, vop/retrieval/pipeline.py). Galleries of every other method are written as
format 1, unchanged, so older vop versions keep reading them; a format-2 file is refused by
them (by its format name, before any tensor is read), and this version refuses a newer format
saying so.
Building is resumable: videos are encoded in chunks saved under `<gallery>.parts/`, and a rerun
reuses the chunks already there (if the same encoder wrote them from the same files).
`info.video_stats` holds each video file's [size, mtime_ns] when it was encoded, so `action=update`
(vop/retrieval/gallery_update.py) re-encodes only new and changed files; galleries written before
it have none (and an older vop ignores the key).
Format 3 is a moment gallery (vop/retrieval/moments.py): each row is a window of a video, `spans`
[N, 2] holds its start and end seconds (ids and paths repeat per window), `info.moments` the window
and stride, and `info.caption_spans` each caption's ground-truth span where the data set has one
(`info.caption_times`: every annotator's, DiDeMo).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file
from tqdm import tqdm

from vop.config.stored import stored_config
from vop.data.bad_videos import BadVideosError, check_unreadable, drop_unreadable
from vop.data.split import Split
from vop.engine.finite_embeddings import require_finite
from vop.errors import InputError, MissingFileError, UserError
from vop.file_writes import failure_reason, save_tensors, write_problem
from vop.models.clip import mean_pool
from vop.models.tensor_file import TensorFileError, read_header
from vop.retrieval.query_encoder import ENCODER_GROUPS, Encoder

log = logging.getLogger(__name__)
FORMAT = "vop-gallery-1"           # mean-pooled video embeddings only
FORMAT_FRAMES = "vop-gallery-2"    # ... plus frame embeddings, for a text-conditioned pooling (X-Pool)
FORMAT_MOMENTS = "vop-gallery-3"   # rows are moments (video, start, end): + spans [N, 2] seconds
FORMAT_PREFIX = "vop-gallery-"
TENSORS = {"video_emb": ("F32",), "text_emb": ("F32",), "caption_video": ("I64",)}  # what a gallery holds
TENSORS_FRAMES = {**TENSORS, "frame_emb": ("F32",)}
TENSORS_MOMENTS = ({**TENSORS, "spans": ("F32",)}, {**TENSORS_FRAMES, "spans": ("F32",)})  # without/with frames
READ = (FORMAT, FORMAT_FRAMES, FORMAT_MOMENTS)


class GalleryMismatchError(InputError):
    """The query encoder is not the one the gallery was built with."""


@dataclass
class Gallery:
    video_emb: torch.Tensor  # [N, D] L2-normalised
    text_emb: torch.Tensor  # [M, D] L2-normalised
    video_ids: list[str]
    video_paths: list[str]
    captions: list[str]
    caption_video: list[int]  # row of video_emb each caption describes
    encoder: dict = field(default_factory=dict)  # Encoder.identity
    config: dict = field(default_factory=dict)  # the encoder's config groups, resolved
    source: str = ""  # the file it was loaded from
    frame_emb: torch.Tensor | None = None  # [N, T, D] L2-normalised frames (text-conditioned encoders only)
    video_stats: list[list[int] | None] | None = None  # per video [size, mtime_ns] when encoded; None: not kept
    spans: torch.Tensor | None = None  # [N, 2] seconds: a moment gallery's rows are windows (format 3)
    moments: dict | None = None  # {"window": s, "stride": s} of a moment gallery
    caption_spans: list[list[float] | None] | None = None  # per caption its ground-truth [start, end] seconds
    caption_times: list[list[list[float]] | None] | None = None  # per caption every annotator's [start, end] (DiDeMo)
    build_stamp: str | None = None  # a shard's: hash of what its build encoded (gallery_shards.py reuses it on a rerun)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {"video_ids": self.video_ids, "video_paths": self.video_paths, "captions": self.captions,
                "encoder": self.encoder, "config": self.config}
        if self.video_stats is not None:
            info["video_stats"] = self.video_stats
        if self.spans is not None:
            info["moments"] = self.moments or {}
            if self.caption_spans is not None:
                info["caption_spans"] = self.caption_spans
            if self.caption_times is not None:
                info["caption_times"] = self.caption_times
        if self.build_stamp is not None:
            info["build_stamp"] = self.build_stamp
        tensors = {"video_emb": self.video_emb.contiguous(), "text_emb": self.text_emb.contiguous(),
                   "caption_video": torch.tensor(self.caption_video, dtype=torch.long)}
        if self.frame_emb is not None:
            tensors["frame_emb"] = self.frame_emb.contiguous()
        kind = FORMAT if self.frame_emb is None else FORMAT_FRAMES
        if self.spans is not None:
            tensors["spans"], kind = self.spans.float().contiguous(), FORMAT_MOMENTS
        return save_tensors(tensors, path, {"format": kind, "info": json.dumps(info)})

    @classmethod
    def load(cls, path: str | Path) -> "Gallery":
        """Read a gallery file; its header, ids and shapes are checked before any tensor is read."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"gallery={path}: no such file (build it with `python retrieve.py action=build "
                                   f"gallery={path} ...`)")
        rebuild = f"rebuild it with `python retrieve.py action=build gallery={path} ...`"
        try:
            shapes, meta = read_header(path, ("F32", "I64"))
            kind = _format(meta, path)
            _check_dtypes(path, shapes, _tensors_of(kind, shapes))
        except TensorFileError as err:
            raise InputError(f"gallery={path} is not a readable safetensors file ({err}): a truncated copy or "
                             f"another format; {rebuild}") from None
        info = _info(meta, path)
        _check_shapes(shapes, info, path)
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        caption_video, n = tensors["caption_video"], len(info["video_ids"])
        # -1: a caption of no video of the gallery (ModelScope's precomputed features may not say)
        if caption_video.numel() and not (-1 <= int(caption_video.min()) and int(caption_video.max()) < n):
            raise InputError(f"gallery={path}: caption_video must index the {n} videos; it holds "
                             f"{int(caption_video.min())}..{int(caption_video.max())}; {rebuild}")
        require_finite(tensors["video_emb"], "video", f"gallery={path}")
        require_finite(tensors["text_emb"], "caption", f"gallery={path}")
        if "frame_emb" in tensors:
            require_finite(tensors["frame_emb"], "video frame", f"gallery={path}")
        if "spans" in tensors:
            check_spans(tensors["spans"], info, path)
        return cls(tensors["video_emb"], tensors["text_emb"], info["video_ids"], info["video_paths"],
                   info["captions"], caption_video.tolist(), info["encoder"], info["config"], str(path),
                   tensors.get("frame_emb"), info.get("video_stats"), tensors.get("spans"), info.get("moments"),
                   info.get("caption_spans"), info.get("caption_times"))

    def encoder_config(self) -> DictConfig:
        """The encoder's config groups, read as values: rebuilt from the project's own groups."""
        return stored_config(self.config, f"gallery {self.source or '(in memory)'}", ENCODER_GROUPS)

    def first_caption(self, video: int) -> str | None:
        """The first caption of the gallery's video row `video`, None if it has none (a moment gallery: the
        caption of its video whose span overlaps the moment most, vop/retrieval/moments.py)."""
        if self.spans is not None:
            return self._moment_captions.get(video)
        return self._first_captions.get(video)

    @cached_property
    def _first_captions(self) -> dict[int, str]:
        first: dict[int, str] = {}
        for text, owner in zip(self.captions, self.caption_video):
            first.setdefault(owner, text)
        return first

    @cached_property
    def _moment_captions(self) -> dict[int, str]:
        from vop.retrieval.moments import moment_captions  # moment logic in its own file, which reads galleries

        return moment_captions(self)

    @cached_property
    def video_rows(self) -> dict[tuple[str, str], list[int]]:
        """(id, file) of each video -> its rows (one for a whole-video gallery; its moments for a moment gallery)."""
        rows: dict[tuple[str, str], list[int]] = {}
        for row, key in enumerate(zip(self.video_ids, self.video_paths)):
            rows.setdefault(key, []).append(row)
        return rows

    def check_width(self, query: torch.Tensor) -> None:
        """A query embedding [1, D] must be as wide as the gallery's."""
        if query.shape[-1] != self.video_emb.shape[1]:
            raise GalleryMismatchError(f"gallery {self.source} holds {self.video_emb.shape[1]}-wide embeddings, but "
                                       f"the query encoder makes {query.shape[-1]}-wide ones")

    def check(self, encoder: Encoder, path: str | Path = "") -> None:
        """Refuse an encoder whose model, method or weights differ from the gallery's."""
        mine, theirs = self.encoder, encoder.identity
        if any(mine.get(k) != theirs[k] for k in ("model", "method", "fingerprint")):
            raise GalleryMismatchError(
                f"gallery {path} was built with model={mine.get('model')} method={mine.get('method')} "
                f"ckpt={mine.get('ckpt')} (weights fingerprint {mine.get('fingerprint')}), but the query encoder is "
                f"{encoder.describe()}: embeddings of different models are not comparable. Query with the "
                "gallery's own encoder (leave out ckpt=) or rebuild the gallery with this one.")


def _format(meta: dict, path: Path) -> str:
    """The file's gallery format (1, 2 or 3); a newer one is refused as such, anything else as no gallery."""
    kind = meta.get("format")
    if kind in READ:
        return kind
    version = kind[len(FORMAT_PREFIX):] if isinstance(kind, str) and kind.startswith(FORMAT_PREFIX) else ""
    if kind == "vop-gallery-manifest-1":  # vop/retrieval/gallery_shards.py reads it and its shards
        raise InputError(f"gallery={path} is a sharded gallery's manifest: load it with "
                         "vop.retrieval.gallery_shards.load_gallery")
    if version.isdigit() and int(version) > len(READ):
        raise InputError(f"gallery={path} has format {kind}, written by a newer vop; this version reads "
                         f"{', '.join(READ)}: upgrade vop, or rebuild the gallery with this one")
    raise InputError(f"gallery={path} is not a vop gallery (its metadata has format={kind}, expected one of "
                     f"{', '.join(READ)})")


def _tensors_of(kind: str, shapes: dict) -> dict:
    """The tensors a file of format `kind` holds (a moment gallery: with or without frames)."""
    if kind == FORMAT_MOMENTS:
        return TENSORS_MOMENTS[1] if "frame_emb" in shapes else TENSORS_MOMENTS[0]
    return TENSORS if kind == FORMAT else TENSORS_FRAMES


def check_spans(spans: torch.Tensor, info: dict, path: Path) -> None:
    """A moment gallery's spans [N, 2]: finite seconds, start <= end; its caption spans likewise (or null)."""
    if not bool(torch.isfinite(spans).all()) or bool((spans[:, 0] > spans[:, 1]).any()) or bool((spans < 0).any()):
        raise InputError(f"gallery={path}: spans must hold finite [start, end] seconds with 0 <= start <= end")
    moments = info.get("moments")
    if not isinstance(moments, dict):
        raise InputError(f"gallery={path}: a moment gallery's info.moments must be a JSON object")
    cap = info.get("caption_spans")
    seconds = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if cap is not None and not (isinstance(cap, list) and len(cap) == len(info["captions"]) and all(
            s is None or (isinstance(s, list) and len(s) == 2 and all(map(seconds, s))) for s in cap)):
        raise InputError(f"gallery={path}: info.caption_spans must hold one [start, end] (or null) per caption")
    times = info.get("caption_times")
    if times is not None and not (isinstance(times, list) and len(times) == len(info["captions"]) and all(
            t is None or (isinstance(t, list) and t and all(isinstance(s, list) and len(s) == 2 and all(map(seconds, s))
                                                          for s in t)) for t in times)):
        raise InputError(f"gallery={path}: info.caption_times must hold per caption a list of [start, end] (or null)")


def _check_dtypes(path: Path, shapes: dict, expected: dict[str, tuple[str, ...]]) -> None:
    """Exactly the tensors of the file's format, each of its dtype."""
    if set(shapes) != set(expected):
        raise TensorFileError(f"{path}: holds tensors {sorted(shapes)}, its format holds {sorted(expected)}")
    for name, dtypes in expected.items():
        if shapes[name].dtype not in dtypes:
            raise TensorFileError(f"{path}: tensor {name!r} is {shapes[name].dtype}, expected {'/'.join(dtypes)}")


def info_object(meta: dict, where: str) -> dict:
    """A gallery's or manifest's metadata key `info`: a JSON object, else InputError starting with `where`."""
    try:
        info = json.loads(meta.get("info", ""))
    except json.JSONDecodeError as err:
        raise InputError(f"{where} its metadata key `info` is not JSON ({err})") from None
    if not isinstance(info, dict):
        raise InputError(f"{where} its metadata key `info` must be a JSON object")
    return info


def _info(meta: dict, path: Path) -> dict:
    """The gallery's `info` metadata: ids, paths and captions as lists of strings, the encoder."""
    info = info_object(meta, f"gallery={path}:")
    for key in ("video_ids", "video_paths", "captions"):
        value = info.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"gallery={path}: info.{key} must be a list of strings")
    for key in ("encoder", "config"):
        if not isinstance(info.get(key), dict):
            raise InputError(f"gallery={path}: info.{key} must be a JSON object")
    stats = info.get("video_stats")
    if stats is not None and not (isinstance(stats, list) and len(stats) == len(info["video_ids"]) and all(
            s is None or (isinstance(s, list) and len(s) == 2 and all(type(v) is int for v in s)) for s in stats)):
        raise InputError(f"gallery={path}: info.video_stats must hold one [size, mtime_ns] (or null) per video")
    return info


def _check_shapes(shapes: dict, info: dict, path: Path) -> None:
    """[N, D] videos, [M, D] captions, [M] links, with N ids and paths and M captions."""
    video, text, links = shapes["video_emb"].shape, shapes["text_emb"].shape, shapes["caption_video"].shape
    n, m = len(info["video_ids"]), len(info["captions"])
    problems = []
    if len(video) != 2 or video[0] != n or video[0] < 1 or len(info["video_paths"]) != n:
        problems.append(f"video_emb is {list(video)} for {n} video ids and {len(info['video_paths'])} paths")
    if len(text) != 2 or text[0] != m or (len(video) == 2 and text[1] != video[1]):
        problems.append(f"text_emb is {list(text)} for {m} captions and video_emb {list(video)}")
    if links != (m,):
        problems.append(f"caption_video is {list(links)} for {m} captions")
    frames = shapes["frame_emb"].shape if "frame_emb" in shapes else None
    if frames is not None and (len(frames) != 3 or frames[0] != n or frames[1] < 1 or list(frames[2:]) != list(video[1:])):
        problems.append(f"frame_emb is {list(frames)} for video_emb {list(video)}")
    if "spans" in shapes and list(shapes["spans"].shape) != [n, 2]:
        problems.append(f"spans is {list(shapes['spans'].shape)} for {n} rows")
    if problems:
        raise InputError(f"gallery={path} is inconsistent: {'; '.join(problems)}; rebuild it with "
                         f"`python retrieve.py action=build gallery={path} ...`")


class GalleryWriteError(UserError):
    """A build could not write its chunks or its gallery file (a full disk, a folder gone read-only)."""

    def __init__(self, path: Path, err: OSError):
        parts = parts_dir(path)
        done = sorted(parts.glob("videos_*.safetensors")) if parts.is_dir() else []
        kept = (f"{len(done)} finished chunks are kept in {parts}, and the same build run again reuses them"
                if done else "nothing was saved")
        super().__init__(f"gallery={path}: could not write {err.filename or path}: {failure_reason(err)}; {kept}")


def check_gallery_folder(path: str | Path) -> None:
    """Refuse a gallery path whose folder cannot be written, before any model or video is loaded."""
    problem = write_problem(Path(path).expanduser().absolute().parent)
    if problem:
        raise InputError(f"gallery={path}: {problem}: give gallery=<a file in a folder you can write>")


def file_stats(paths: list) -> list[list[int] | None]:
    """Each file's [size in bytes, modification time in ns] (None where it cannot be read): how a gallery
    knows a video file again. Taken before encoding, so a file changed meanwhile is re-encoded by an update."""
    stats = []
    for path in paths:
        try:
            st = Path(path).stat()
        except OSError:
            stats.append(None)
        else:
            stats.append([st.st_size, st.st_mtime_ns])
    return stats


def parts_dir(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def _read_part(part: Path, stamp: str) -> tuple[torch.Tensor, dict[int, str]] | None:
    """A finished chunk's (embeddings, unreadable videos) if the same encoder wrote it from the same files."""
    with safe_open(str(part), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("fingerprint") != stamp:
        return None
    return load_file(str(part))["emb"], {int(i): r for i, r in json.loads(meta.get("unreadable", "{}")).items()}


def encode_chunks(encoder: Encoder, split: Split, parts: Path, chunk: int, progress: bool,
                  check: Callable[[dict[int, str]], None], stats: list) -> tuple[torch.Tensor, dict[int, str]]:
    """Readable videos' embeddings [n, D] in row order, chunk by chunk, and {video index: reason} of the
    unreadable ones (`check` sees them after each chunk, to stop early); chunks in `parts` written by the same
    encoder from the same files (paths and `stats`, file_stats of the split's videos) are reused. The others
    are encoded from one loader, whose workers decode across chunk boundaries."""
    parts.mkdir(parents=True, exist_ok=True)
    chunks = [range(start, min(start + chunk, split.num_videos)) for start in range(0, split.num_videos, chunk)]
    # A chunk is reused only if the same encoder encoded the same files (same size and time).
    stamps = [hashlib.sha256(json.dumps([encoder.identity["fingerprint"], [str(split.video_paths[i]) for i in rows],
                                         [stats[i] for i in rows]] + window_key(split, rows)).encode()).hexdigest()
              for rows in chunks]
    files = [parts / f"videos_{rows.start:09d}_{rows.stop:09d}.safetensors" for rows in chunks]
    reused = [_read_part(part, stamp) if part.is_file() else None for part, stamp in zip(files, stamps)]
    fresh = encoder.encode_readable_chunks(split, [rows for rows, done in zip(chunks, reused) if done is None])
    embs, unreadable = [], {}
    bar = tqdm(total=split.num_videos, desc="gallery videos", unit="video", disable=not progress)
    for rows, part, stamp, done in zip(chunks, files, stamps, reused):
        if done is not None:
            emb, bad = done
            log.info("gallery: reusing %s", part.name)
        else:
            emb, bad = next(fresh)  # [n, D]
            save_tensors({"emb": emb.contiguous()}, part, {"fingerprint": stamp, "unreadable": json.dumps(bad)})
        embs.append(emb)
        unreadable.update(bad)
        check(unreadable)
        bar.update(len(rows))
    bar.close()
    return torch.cat(embs), unreadable


def window_key(split: Split, rows: range) -> list:
    """What a chunk of a moment split encodes besides its files: each row's frames (nothing for whole videos,
    so their chunks keep their stamps)."""
    if split.windows is None:
        return []
    return [[[w.first, w.stop] if w is not None else None for w in (split.windows[i] for i in rows)]]


def build_gallery(encoder: Encoder, split: Split, path: str | Path, chunk_videos: int = 1024,
                  progress: bool = True, max_bad_fraction: float = 0.1, strict: bool = False,
                  build_stamp: str | None = None) -> Gallery:
    """Encode every video and caption of `split` with `encoder` and save the gallery at `path`.

    A video that cannot be decoded is left out with its captions, named and counted (WARNING);
    more than `max_bad_fraction` of the videos, or any with `strict`, stops the build
    (vop/data/bad_videos.py, BadVideosError)."""
    path = Path(path)
    if chunk_videos < 1:
        raise InputError(f"chunk_videos must be >= 1, got {chunk_videos}")
    what = f"gallery={path}"
    check = partial(check_unreadable, split, max_bad_fraction=max_bad_fraction, strict=strict, what=what)
    stats = file_stats(split.video_paths)
    try:
        video_emb, unreadable = encode_chunks(encoder, split, parts_dir(path), chunk_videos, progress, check, stats)
    except OSError as err:
        raise GalleryWriteError(path, err) from None
    kept = [i for i in range(split.num_videos) if i not in unreadable]
    split = drop_unreadable(split, unreadable, max_bad_fraction, strict, what)
    gallery = assemble_gallery(encoder, split, video_emb, [stats[i] for i in kept], path)
    gallery.build_stamp = build_stamp
    save_gallery(gallery, path)
    skipped = f" ({len(unreadable)} unreadable videos skipped)" if unreadable else ""
    rows = "moments" if split.windows is not None else "videos"
    log.info("gallery: %d %s, %d captions -> %s%s", split.num_videos, rows, split.num_captions, path, skipped)
    return gallery


def assemble_gallery(encoder: Encoder, split: Split, video_emb: torch.Tensor, stats: list, path: Path) -> Gallery:
    """The gallery of `split`'s (readable) videos, their embeddings [N, D] (or frames [N, T, D]) and file stats;
    its captions are encoded here."""
    if not split.num_videos:
        raise BadVideosError(f"gallery={path}: no video could be read")
    frame_emb = None
    if video_emb.ndim == 3:  # a text-conditioned encoder: frames [N, T, D] kept, their mean shortlists
        frame_emb, video_emb = video_emb, mean_pool(video_emb)
    text_emb = encoder.encode_texts(split.captions) if split.captions else video_emb.new_zeros(0, video_emb.shape[1])
    require_finite(video_emb, "video", f"building gallery={path} with {encoder.describe()}")
    require_finite(text_emb, "caption", f"building gallery={path} with {encoder.describe()}")
    moments = {}
    if split.windows is not None:  # a moment gallery (format 3)
        spans = [[w.start, w.end] if w is not None else [0.0, 0.0] for w in split.windows]
        caption_spans = None if split.caption_spans is None else [
            None if s is None else [float(s[0]), float(s[1])] for s in split.caption_spans]
        caption_times = None if split.caption_times is None else [
            None if t is None else [[float(a), float(b)] for a, b in t] for t in split.caption_times]
        moments = dict(spans=torch.tensor(spans, dtype=torch.float32), moments=dict(split.info.get("moments", {})),
                       caption_spans=caption_spans, caption_times=caption_times)
    return Gallery(video_emb, text_emb, list(split.video_ids), [str(p) for p in split.video_paths],
                   list(split.captions), list(split.caption_video), encoder.identity,
                   OmegaConf.to_container(encoder.cfg, resolve=True), frame_emb=frame_emb, video_stats=stats, **moments)


def save_gallery(gallery: Gallery, path: Path) -> None:
    """Write it atomically, then drop the finished chunks under <gallery>.parts/."""
    try:
        gallery.save(path)
    except OSError as err:
        raise GalleryWriteError(path, err) from None
    shutil.rmtree(parts_dir(path), ignore_errors=True)
