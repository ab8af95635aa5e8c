"""A sharded gallery: shard files under `<gallery>.shards/`, and at `<gallery>` a manifest that names them.

Each shard is an ordinary gallery file (vop/retrieval/gallery.py) holding a contiguous range of the
listed videos and the captions of those videos, so a shard is self-contained. The manifest is a
safetensors file with no tensors whose metadata `format` is `vop-gallery-manifest-1` and whose `info`
JSON holds:

    {"shards": [{"file": "shard-00000-of-00002.safetensors", "videos": 8, "captions": 8,
                 "bytes": 41234, "header_sha256": "..."}, ...],
     "videos": 16, "captions": 16, "dim": 512, "format": "vop-gallery-1",
     "encoder": {model, method, ckpt, fingerprint}, "config": {the encoder's config groups}}

`file` is a plain file name inside `<gallery>.shards/`; `bytes` is the shard's size and `header_sha256`
the sha256 of its safetensors header (its ids, paths, captions, encoder and tensor layout), so a shard
replaced or truncated after the manifest was written is refused without hashing its tensors.

`build_shards` is a build's side (`torchrun ... retrieve.py action=build`, or `shards=K`): shard k of K holds
the k-th contiguous range of the listing whatever the number of processes, each process builds its share,
a finished shard whose build stamp matches is kept by a rerun, and rank 0 writes the manifest once every
shard is there. `save_sharded` writes a gallery held in memory as shards (`action=update` of a sharded one).
`write_manifest(path, shard_paths)` writes one for shard files that already exist; `load_gallery(path)`
loads a manifest (its shards concatenated, caption links offset) or a plain gallery file alike, and is
what the query pipeline, the server and `action=update` read. A manifest is data: its header is checked
before its contents, a shard name that leaves the shards folder (`..`, a path, a symlink out) is refused,
and every shard's header, encoder (model, method, weights fingerprint), format, width and counts must be
the manifest's.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from vop.data.split import Split
from vop.engine import distributed
from vop.errors import InputError, MissingFileError, UserError
from vop.file_writes import save_tensors
from vop.models.tensor_file import MAX_HEADER_BYTES, TensorFileError, read_header
from vop.retrieval.gallery import FORMAT_PREFIX, Gallery, build_gallery, file_stats, info_object, window_key
from vop.retrieval.query_encoder import Encoder

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "vop-gallery-manifest-1"
IDENTITY = ("model", "method", "fingerprint")  # what makes two encoders' embeddings comparable
SHARD_FILE = re.compile(r"shard-\d{5}-of-\d{5}(-[0-9a-f]{8})?\.safetensors(\.parts)?")  # what a build writes
MAX_SHARDS = 100_000
SHA256 = re.compile(r"[0-9a-f]{64}")


def shards_dir(path: str | Path) -> Path:
    """`<gallery>.shards/`: where the shards of the gallery at `path` live."""
    path = Path(path)
    return path.with_name(path.name + ".shards")


def shard_name(k: int, total: int, tag: str = "") -> str:
    """A build's shard `k` of `total`; `tag`: 8 hex digits, for a rewrite beside the files a manifest lists."""
    return f"shard-{k:05d}-of-{total:05d}{'-' + tag if tag else ''}.safetensors"


def shard_rows(num_videos: int, k: int, total: int) -> range:
    """The rows of the listing that shard `k` of `total` holds: a contiguous range, the same on every rank."""
    return range(k * num_videos // total, (k + 1) * num_videos // total)


@dataclass(frozen=True)
class ShardEntry:
    file: str
    videos: int
    captions: int
    bytes: int
    header_sha256: str


@dataclass
class Manifest:
    path: Path
    shards: list[ShardEntry]
    encoder: dict
    config: dict
    format: str  # the shards' gallery format
    dim: int
    videos: int
    captions: int

    def shard_path(self, entry: ShardEntry) -> Path:
        return shards_dir(self.path) / entry.file


def header_sha256(path: Path) -> str:
    """sha256 of a safetensors file's length field and JSON header (what the file says it holds)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 0 or length > size - 8 or length > MAX_HEADER_BYTES:
            raise TensorFileError(f"{path}: not a safetensors file (its header length field is {length:,} for "
                                  f"{size:,} bytes)")
        return hashlib.sha256(head + f.read(length)).hexdigest()


def is_manifest(path: str | Path) -> bool:
    """Whether `path` is a readable safetensors file whose metadata format is the manifest's."""
    try:
        _, meta = read_header(path, {})
    except (OSError, TensorFileError):
        return False
    return meta.get("format") == MANIFEST_FORMAT


def load_gallery(path: str | Path) -> Gallery:
    """The gallery at `path`: a manifest's shards as one gallery, or a plain gallery file."""
    path = Path(path)
    if path.is_file():
        try:
            _, meta = read_header(path, ("F32", "I64"))
        except TensorFileError:
            meta = {}  # Gallery.load says what is wrong with it
        if meta.get("format") == MANIFEST_FORMAT:
            return load_sharded(path)
    return Gallery.load(path)


# ------------------------------------------------------------------ writing
def _shard_summary(shard: Path) -> dict:
    """What the manifest records of one shard and checks across shards, read from its header only."""
    try:
        shapes, meta = read_header(shard, ("F32", "I64"))
    except TensorFileError as err:
        raise InputError(f"shard {shard} is not a readable gallery file ({err})") from None
    kind = meta.get("format", "")
    try:
        info = json.loads(meta.get("info", ""))
    except json.JSONDecodeError:
        info = None
    video = shapes.get("video_emb")
    if not (kind.startswith(FORMAT_PREFIX) and isinstance(info, dict) and isinstance(info.get("encoder"), dict)
            and isinstance(info.get("video_ids"), list) and isinstance(info.get("captions"), list)
            and video is not None and len(video.shape) == 2):
        raise InputError(f"shard {shard} is not a vop gallery file (format={kind or None})")
    return {"entry": ShardEntry(shard.name, len(info["video_ids"]), len(info["captions"]), shard.stat().st_size,
                                header_sha256(shard)),
            "format": kind, "dim": video.shape[1], "encoder": info["encoder"], "config": info.get("config", {})}


def write_manifest(path: str | Path, shard_paths: list[str | Path]) -> Manifest:
    """Write the manifest at `path` for gallery files that already exist in `<path>.shards/` (in the given
    order: the loaded gallery's rows follow it). Every shard must have the first one's encoder, format and
    width; only their headers are read."""
    path = Path(path)
    folder = shards_dir(path).resolve()
    if not shard_paths:
        raise InputError(f"gallery={path}: a manifest needs at least one shard")
    summaries = []
    for shard in map(Path, shard_paths):
        if shard.resolve().parent != folder:
            raise InputError(f"gallery={path}: shard {shard} is not a file in {shards_dir(path)}")
        summaries.append(_shard_summary(shard))
    first = summaries[0]
    for shard, s in zip(shard_paths, summaries):
        theirs = {k: s["encoder"].get(k) for k in IDENTITY}
        if theirs != {k: first["encoder"].get(k) for k in IDENTITY} or (s["format"], s["dim"]) != (
                first["format"], first["dim"]):
            raise InputError(f"gallery={path}: shard {shard} was written by another encoder or in another format "
                             f"({theirs}, {s['format']}, width {s['dim']}) than {shard_paths[0]} "
                             f"({first['encoder']}, {first['format']}, width {first['dim']})")
    entries = [s["entry"] for s in summaries]
    if len({e.file for e in entries}) != len(entries):
        raise InputError(f"gallery={path}: a shard is listed twice")
    info = {"shards": [vars(e) for e in entries], "videos": sum(e.videos for e in entries),
            "captions": sum(e.captions for e in entries), "dim": first["dim"], "format": first["format"],
            "encoder": first["encoder"], "config": first["config"]}
    save_tensors({}, path, {"format": MANIFEST_FORMAT, "info": json.dumps(info)})
    return read_manifest(path)


# ------------------------------------------------------------------ reading
def read_manifest(path: str | Path) -> Manifest:
    """The manifest at `path`, its header and every field checked; no shard is opened."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"gallery={path}: no such file")
    try:
        _, meta = read_header(path, {})  # a manifest holds no tensor
    except TensorFileError as err:
        raise InputError(f"gallery={path} is not a sharded gallery's manifest ({err})") from None
    if meta.get("format") != MANIFEST_FORMAT:
        raise InputError(f"gallery={path} is not a sharded gallery's manifest (its metadata has "
                         f"format={meta.get('format')}, expected {MANIFEST_FORMAT})")
    bad = f"gallery={path}: its manifest is malformed:"
    info = info_object(meta, bad)
    for key in ("encoder", "config"):
        if not isinstance(info.get(key), dict):
            raise InputError(f"{bad} info.{key} must be a JSON object")
    if not all(_count(info.get(k)) for k in ("videos", "captions", "dim")) or not isinstance(info.get("format"), str):
        raise InputError(f"{bad} info.videos, info.captions, info.dim must be counts and info.format a string")
    shards = info.get("shards")
    if not isinstance(shards, list) or not 1 <= len(shards) <= MAX_SHARDS:
        raise InputError(f"{bad} info.shards must list 1 to {MAX_SHARDS} shards")
    entries = [_entry(e, bad) for e in shards]
    names = [e.file for e in entries]
    if len(set(names)) != len(names):
        raise InputError(f"{bad} a shard is listed twice")
    if sum(e.videos for e in entries) != info["videos"] or sum(e.captions for e in entries) != info["captions"]:
        raise InputError(f"{bad} its shards hold {sum(e.videos for e in entries)} videos and "
                         f"{sum(e.captions for e in entries)} captions, it says {info['videos']} and "
                         f"{info['captions']}")
    return Manifest(path, entries, info["encoder"], info["config"], info["format"], info["dim"], info["videos"],
                    info["captions"])


def _count(value) -> bool:
    return type(value) is int and value >= 0


def _entry(raw, bad: str) -> ShardEntry:
    fields = ("file", "videos", "captions", "bytes", "header_sha256")
    if not (isinstance(raw, dict) and set(raw) == set(fields) and isinstance(raw["file"], str)
            and all(_count(raw[k]) for k in ("videos", "captions", "bytes"))
            and isinstance(raw["header_sha256"], str) and SHA256.fullmatch(raw["header_sha256"])):
        raise InputError(f"{bad} each shard must be {{{', '.join(fields)}}}; one is {json.dumps(raw)[:200]}")
    name = raw["file"]
    if name in ("", ".", "..") or name != Path(name).name or "/" in name or "\\" in name or "\0" in name:
        raise InputError(f"{bad} shard name {name[:200]!r} is not a plain file name inside the shards folder")
    return ShardEntry(**raw)


def checked_shard(manifest: Manifest, entry: ShardEntry) -> Path:
    """The shard's file: inside the shards folder (no symlink out of it), the size and header the manifest
    recorded."""
    folder, path = shards_dir(manifest.path), manifest.shard_path(entry)
    where = f"gallery={manifest.path}: shard {path}"
    if not path.is_file():
        raise MissingFileError(f"{where}: no such file (an unfinished or moved build: run the same build again, "
                               "which keeps the finished shards)")
    if path.resolve().parent != folder.resolve():
        raise InputError(f"{where} leads out of {folder} (to {path.resolve()}): refused")
    if path.stat().st_size != entry.bytes:
        raise InputError(f"{where} holds {path.stat().st_size:,} bytes, the manifest recorded {entry.bytes:,}: "
                         "truncated or replaced since; rebuild the gallery")
    try:
        digest = header_sha256(path)
    except TensorFileError as err:
        raise InputError(f"{where}: {err}") from None
    if digest != entry.header_sha256:
        raise InputError(f"{where}: its header is not the one the manifest recorded (replaced since the manifest "
                         "was written); rebuild the gallery")
    return path


def load_shard(manifest: Manifest, entry: ShardEntry) -> Gallery:
    """One shard, checked against the manifest: encoder, format, width and counts."""
    path = checked_shard(manifest, entry)
    shard = Gallery.load(path)  # its header checked before its tensors are read
    where = f"gallery={manifest.path}: shard {path}"
    kind = read_header(path, ("F32", "I64"))[1].get("format")
    if kind != manifest.format:
        raise InputError(f"{where} has format {kind}, the manifest says {manifest.format}")
    theirs = {k: shard.encoder.get(k) for k in IDENTITY}
    if theirs != {k: manifest.encoder.get(k) for k in IDENTITY}:
        raise InputError(f"{where} was built with {theirs}, the manifest says {manifest.encoder}: shards of "
                         "different encoders are not one gallery")
    counts = (len(shard.video_ids), len(shard.captions), shard.video_emb.shape[1])
    if counts != (entry.videos, entry.captions, manifest.dim):
        raise InputError(f"{where} holds {counts[0]} videos, {counts[1]} captions of width {counts[2]}; the manifest "
                         f"says {entry.videos}, {entry.captions}, {manifest.dim}")
    return shard


def load_sharded(path: str | Path) -> Gallery:
    """The manifest's shards as one gallery, rows in shard order; caption links offset to its rows."""
    manifest = read_manifest(path)
    return concat_galleries([load_shard(manifest, e) for e in manifest.shards], manifest)


def shard_video_chunks(path: str | Path):
    """The manifest's video embeddings one shard at a time ([n_k, D], shard order), each shard checked as
    load_sharded checks it; only one shard is in memory at once. For an index built without the whole
    gallery: `FaissIndex.from_chunks(lambda: shard_video_chunks(path), kind="ivfpq")`."""
    manifest = read_manifest(path)
    for entry in manifest.shards:
        yield load_shard(manifest, entry).video_emb


def concat_galleries(parts: list[Gallery], manifest: Manifest) -> Gallery:
    links, offset = [], 0
    for part in parts:
        links.extend(v + offset if v >= 0 else -1 for v in part.caption_video)
        offset += len(part.video_ids)
    frames = None
    if parts[0].frame_emb is not None:
        shapes = {tuple(p.frame_emb.shape[1:]) for p in parts}
        if len(shapes) > 1:
            raise InputError(f"gallery={manifest.path}: its shards hold frames of different shapes {sorted(shapes)}")
        frames = torch.cat([p.frame_emb for p in parts])
    stats = None
    if any(p.video_stats is not None for p in parts):
        stats = [s for p in parts for s in (p.video_stats or [None] * len(p.video_ids))]
    return Gallery(torch.cat([p.video_emb for p in parts]), torch.cat([p.text_emb for p in parts]),
                   [v for p in parts for v in p.video_ids], [v for p in parts for v in p.video_paths],
                   [c for p in parts for c in p.captions], links, manifest.encoder, manifest.config,
                   str(manifest.path), frames, stats, **concat_moments(parts, manifest))


def concat_moments(parts: list[Gallery], manifest: Manifest) -> dict:
    """A moment gallery's spans, window options and caption spans over its shards (vop/retrieval/moments.py);
    nothing for whole videos. Every shard must be of the same kind."""
    kinds = {p.spans is not None for p in parts}
    if len(kinds) > 1:
        raise InputError(f"gallery={manifest.path}: some of its shards are moment galleries and some are not")
    if parts[0].spans is None:
        return {}
    def joined(key: str) -> list | None:  # per caption lists of the shards, None where no shard has one
        if all(getattr(p, key) is None for p in parts):
            return None
        return [s for p in parts for s in (getattr(p, key) or [None] * len(p.captions))]

    return {"spans": torch.cat([p.spans for p in parts]), "moments": parts[0].moments,
            "caption_spans": joined("caption_spans"), "caption_times": joined("caption_times")}


# ------------------------------------------------------------------ building
def shard_stamp(encoder: Encoder, split: Split, stats: list) -> str:
    """What a shard's build encodes (encoder weights, video files with their size and time, captions and their
    links), hashed: a finished shard with the same stamp is reused by a rerun."""
    return hashlib.sha256(json.dumps([encoder.identity["fingerprint"], [str(p) for p in split.video_paths], stats,
                                      split.captions, split.caption_video]
                                     + window_key(split, range(split.num_videos))).encode()).hexdigest()


def finished_stamp(shard: Path) -> str | None:
    """The build stamp a finished shard records (None: no file, not a gallery, or no stamp)."""
    try:
        _, meta = read_header(shard, ("F32", "I64"))
        info = json.loads(meta.get("info", ""))
    except (OSError, UserError, json.JSONDecodeError):
        return None
    return info.get("build_stamp") if isinstance(info, dict) else None


def build_shard(encoder: Encoder, split: Split, path: Path, k: int, total: int, **options) -> Path:
    """Shard `k` of `total` (its contiguous range of `split`'s videos and their captions) at
    `<path>.shards/`; a finished one of the same stamp is kept. `options`: build_gallery's."""
    part = split.subset(list(shard_rows(split.num_videos, k, total)))
    shard = shards_dir(path) / shard_name(k, total)
    stamp = shard_stamp(encoder, part, file_stats(part.video_paths))
    if finished_stamp(shard) == stamp:
        log.info("gallery: shard %d of %d is finished, kept (%s)", k + 1, total, shard.name)
        return shard
    log.info("gallery: shard %d of %d: %d videos, %d captions -> %s", k + 1, total, part.num_videos,
             part.num_captions, shard.name)
    build_gallery(encoder, part, shard, build_stamp=stamp, **options)
    return shard


def build_shards(encoder: Encoder, split: Split, path: str | Path, total: int, rank: int = 0, world: int = 1,
                 **options) -> Manifest | None:
    """Build the gallery at `path` as `total` shards, this process's share of them (shards rank, rank + world,
    ...): every process of a torchrun job calls it with its rank. Once every shard is written, rank 0 writes
    the manifest (returned; None on the other ranks). `options`: build_gallery's."""
    path = Path(path)
    if not 1 <= total <= min(split.num_videos, MAX_SHARDS):
        raise InputError(f"gallery={path}: shards={total} for {split.num_videos} videos; give 1 to "
                         f"{min(split.num_videos, MAX_SHARDS)} shards")
    for k in range(rank, total, world):
        build_shard(encoder, split, path, k, total, **options)
    distributed.barrier()  # every rank's shards written
    if rank != 0:
        return None
    shards = [shards_dir(path) / shard_name(k, total) for k in range(total)]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise MissingFileError(
            f"gallery={path}: shards {', '.join(missing[:5])} are not in {shards_dir(path)} on this machine, though "
            "every process finished: on several machines the gallery's folder must be storage every machine "
            f"shares; or copy every shard there and run the same build in one process with shards={total}, which "
            "keeps them and writes the manifest")
    manifest = write_manifest(path, shards)
    remove_stale(manifest)
    log.info("gallery: %d videos, %d captions in %d shards -> %s (manifest), %s", manifest.videos,
             manifest.captions, total, path, shards_dir(path))
    return manifest


def remove_stale(manifest: Manifest) -> None:
    """Drop the shard files (and chunk folders) a build left in the shards folder that the manifest does not list."""
    listed = {e.file for e in manifest.shards}
    for item in sorted(shards_dir(manifest.path).iterdir()):
        if SHARD_FILE.fullmatch(item.name) and item.name.removesuffix(".parts") not in listed:
            log.info("gallery: removing %s (not in the manifest)", item)
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def split_gallery(gallery: Gallery, total: int) -> list[Gallery]:
    """`gallery` as `total` shards of contiguous video rows, each with its videos' captions (captions of no
    video go with the last)."""
    n, parts = len(gallery.video_ids), []
    links = torch.tensor(gallery.caption_video, dtype=torch.long)
    for k in range(total):
        rows = shard_rows(n, k, total)
        mine = (links >= rows.start) & (links < rows.stop)
        if k == total - 1:
            mine |= links < 0
        caps = mine.nonzero()[:, 0].tolist()
        parts.append(Gallery(
            gallery.video_emb[rows.start:rows.stop].clone(), gallery.text_emb[caps].clone(),
            gallery.video_ids[rows.start:rows.stop], gallery.video_paths[rows.start:rows.stop],
            [gallery.captions[c] for c in caps],
            [gallery.caption_video[c] - rows.start if gallery.caption_video[c] >= 0 else -1 for c in caps],
            gallery.encoder, gallery.config,
            frame_emb=None if gallery.frame_emb is None else gallery.frame_emb[rows.start:rows.stop].clone(),
            video_stats=None if gallery.video_stats is None else gallery.video_stats[rows.start:rows.stop],
            **split_moments(gallery, rows, caps)))
    return parts


def split_moments(gallery: Gallery, rows: range, caps: list[int]) -> dict:
    """A moment gallery's spans of `rows` and its caption spans and times of `caps`; nothing for whole videos."""
    if gallery.spans is None:
        return {}
    pick = lambda values: None if values is None else [values[c] for c in caps]  # noqa: E731
    return {"spans": gallery.spans[rows.start:rows.stop].clone(), "moments": gallery.moments,
            "caption_spans": pick(gallery.caption_spans), "caption_times": pick(gallery.caption_times)}


def save_sharded(gallery: Gallery, path: str | Path, total: int) -> Manifest:
    """Write `gallery` as `total` shards and a manifest at `path`, replacing a sharded gallery there: the new
    shards get new names beside the old ones, the manifest is swapped in one rename, then the old are removed
    (an interrupted rewrite leaves the old gallery whole)."""
    path = Path(path)
    total = max(1, min(total, len(gallery.video_ids)))
    tag = uuid.uuid4().hex[:8]
    shards = [part.save(shards_dir(path) / shard_name(k, total, tag))
              for k, part in enumerate(split_gallery(gallery, total))]
    manifest = write_manifest(path, shards)
    remove_stale(manifest)
    return manifest
