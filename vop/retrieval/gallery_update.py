"""Bring a gallery up to date with its collection (`retrieve.py action=update`) without re-encoding it.

A video is known by its path, size and modification time (`Gallery.video_stats`, taken when it was
encoded): a known, unchanged file keeps its embedding; a new or changed one is encoded, in resumable
chunks under `<gallery>.parts/` as a build does; a file no longer listed leaves with its captions.
Galleries built before the stats were kept know no file, so their first update re-encodes every video
(saying so). Captions are re-encoded from the new listing (cheap next to videos), so the result is the
gallery a fresh build of the same listing writes. A sharded gallery (a manifest, gallery_shards.py) is
updated in this process and written back as as many shards, under new names, the manifest swapped in last.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from vop.data.bad_videos import check_unreadable, drop_unreadable
from vop.data.split import Split
from vop.errors import InputError
from vop.retrieval.gallery import (Gallery, GalleryWriteError, assemble_gallery, encode_chunks, file_stats,
                                   parts_dir, save_gallery)
from vop.retrieval.gallery_shards import is_manifest, load_gallery, read_manifest, save_sharded
from vop.retrieval.query_encoder import Encoder

log = logging.getLogger(__name__)


def reusable_rows(old: Gallery, split: Split, stats: list) -> dict[int, int]:
    """{row of `split`: row of `old`} for the videos whose file (path, size, mtime) the gallery already holds."""
    if old.video_stats is None:
        return {}
    known = {(path, tuple(s)): row for row, (path, s) in enumerate(zip(old.video_paths, old.video_stats)) if s}
    return {i: known[key] for i, (p, s) in enumerate(zip(split.video_paths, stats))
            if s and (key := (str(p), tuple(s))) in known}


def _old_embeddings(old: Gallery) -> torch.Tensor:
    """What the gallery's encoder made per video: frames [N, T, D] for a text-conditioned one, else [N, D]."""
    return old.frame_emb if old.frame_emb is not None else old.video_emb


def update_gallery(encoder: Encoder, split: Split, path: str | Path, chunk_videos: int = 1024,
                   progress: bool = True, max_bad_fraction: float = 0.1, strict: bool = False) -> Gallery:
    """Rewrite the gallery at `path` for `split`: unchanged videos keep their embeddings, new and changed
    ones are encoded with `encoder` (refused unless it is the gallery's own), deleted ones are dropped.

    Unreadable videos are skipped and counted as in `build_gallery`, over the whole new listing."""
    path = Path(path)
    if chunk_videos < 1:
        raise InputError(f"chunk_videos must be >= 1, got {chunk_videos}")
    sharded = read_manifest(path) if is_manifest(path) else None  # rewritten as as many shards
    old = load_gallery(path)
    old.check(encoder, path)
    stats = file_stats(split.video_paths)
    reuse = reusable_rows(old, split, stats)
    if old.video_stats is None:
        log.info("gallery=%s keeps no file sizes and times (built before vop kept them): re-encoding all %d "
                 "videos once", path, split.num_videos)
    todo = [i for i in range(split.num_videos) if i not in reuse]
    what = f"gallery={path}"
    unreadable: dict[int, str] = {}
    new_emb = None
    if todo:
        def check(bad: dict[int, str]) -> None:  # the policy counts over the whole listing, as a build's does
            check_unreadable(split, {todo[i]: r for i, r in bad.items()}, max_bad_fraction, strict, what)

        try:
            new_emb, bad = encode_chunks(encoder, split.subset(todo), parts_dir(path), chunk_videos, progress, check,
                                         [stats[i] for i in todo])
        except OSError as err:
            raise GalleryWriteError(path, err) from None
        unreadable = {todo[i]: r for i, r in bad.items()}
    kept = [i for i in range(split.num_videos) if i not in unreadable]
    emb = _merge(_old_embeddings(old), reuse, new_emb, [i for i in todo if i not in unreadable], kept)
    gallery = assemble_gallery(encoder, drop_unreadable(split, unreadable, max_bad_fraction, strict, what), emb,
                               [stats[i] for i in kept], path)
    if sharded is None:
        save_gallery(gallery, path)
    else:
        _save_shards(gallery, path, len(sharded.shards))
    listed = {str(p) for p in split.video_paths}
    dropped = sum(p not in listed for p in old.video_paths)
    skipped = f" ({len(unreadable)} unreadable videos skipped)" if unreadable else ""
    log.info("gallery update: %d videos kept, %d new or changed encoded, %d dropped; %d videos, %d captions -> %s%s",
             len(reuse), len(todo) - len(unreadable), dropped, gallery.video_emb.shape[0], len(gallery.captions),
             path, skipped)
    return gallery


def _merge(old_emb: torch.Tensor, reuse: dict[int, int], new_emb: torch.Tensor | None, encoded: list[int],
           kept: list[int]) -> torch.Tensor:
    """Embeddings of the `kept` rows in order: reused ones from `old_emb`, `encoded` ones from `new_emb` (in order)."""
    if new_emb is not None and new_emb.shape[1:] != old_emb.shape[1:]:
        raise InputError(f"the gallery holds embeddings of shape {list(old_emb.shape[1:])} per video, the encoder "
                         f"makes {list(new_emb.shape[1:])} (another data.num_frames?): rebuild it with action=build")
    new_row = {i: k for k, i in enumerate(encoded)}
    rows = [old_emb[reuse[i]] if i in reuse else new_emb[new_row[i]] for i in kept]
    return torch.stack(rows) if rows else old_emb[:0]


def _save_shards(gallery: Gallery, path: Path, total: int) -> None:
    """A sharded gallery stays sharded: the updated rows written as `total` new shards and a new manifest."""
    try:
        save_sharded(gallery, path, total)
    except OSError as err:
        raise GalleryWriteError(path, err) from None
    shutil.rmtree(parts_dir(path), ignore_errors=True)
