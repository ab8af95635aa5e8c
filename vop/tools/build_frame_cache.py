"""`scripts/build_frame_cache.py`: the dataset's videos (all requested splits) into the frame cache.

Build the frame cache: decode each video once, keep `candidates` frames as JPEGs (see vop/data/frame_store.py).

Videos are decoded and encoded in a process pool; the main process is the only writer, so shards
stay consistent and a killed build resumes where its index ends. Unreadable videos are counted,
logged and listed in `failed.jsonl` (the `frames` decoder then names them if a run asks for them).
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from vop.data.decoders.base import Decoder, VideoDecodeError
from vop.data.frame_store import FAILED, FrameCacheWriter, candidate_indices
from vop.data.frames import resize_chw, resized_size
from vop.data.jpeg import encode_jpeg
from vop.engine import assembly
from vop.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class BuildStats:
    total: int = 0      # videos asked for
    skipped: int = 0    # already in the cache (resumed)
    written: int = 0
    failed: int = 0


@dataclass
class Encoded:
    key: str
    num_frames: int
    frames: np.ndarray   # [K] original indices
    jpegs: list[bytes]
    height: int
    width: int


def resize_short_side(frames, short_side: int):
    """uint8 [K, H, W, 3] -> short side == short_side (never crops; upscales small videos too)."""
    h, w = frames.shape[1:3]
    if min(h, w) == short_side:
        return frames
    new_h, new_w = resized_size(h, w, short_side)
    return resize_chw(frames.permute(0, 3, 1, 2), new_h, new_w).permute(0, 2, 3, 1)


def encode_video(key: str, path: str, decoder: Decoder, candidates: int, short_side: int,
                 quality: int) -> Encoded | str:
    """One video's stored frames, or the reason it could not be read (picklable for the pool)."""
    try:
        total = decoder.num_frames(path)
        if total <= 0:
            return f"it has {total} frames"
        frames_idx = candidate_indices(total, candidates)  # [K]
        frames = resize_short_side(decoder.decode(path, frames_idx), short_side).numpy()  # [K, h, w, 3]
    except VideoDecodeError as err:
        return err.reason
    jpegs = [encode_jpeg(f, quality) for f in frames]
    return Encoded(key, total, frames_idx, jpegs, frames.shape[1], frames.shape[2])


def _encode_star(args: tuple) -> tuple[str, Encoded | str]:
    return args[0], encode_video(*args)


def _results(jobs: list[tuple], workers: int) -> Iterator[tuple[str, Encoded | str]]:
    if workers <= 0:
        yield from map(_encode_star, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_encode_star, jobs, chunksize=4)


def build_frame_cache(videos: Iterable[tuple[str, str]], cache_dir: str | Path, decoder: Decoder,
                      candidates: int = 36, short_side: int = 224, quality: int = 90, workers: int = 4,
                      shard_mb: float = 1024, progress: bool = True) -> BuildStats:
    """Store the videos `(key, path)` not yet in the cache at `cache_dir`; resumable."""
    params = {"candidates": candidates, "short_side": short_side, "quality": quality}
    writer = FrameCacheWriter(cache_dir, params, shard_mb=shard_mb)
    videos = list(dict(videos).items())  # unique keys, first path wins
    todo = [(k, str(p), decoder, candidates, short_side, quality) for k, p in videos if k not in writer.done]
    stats = BuildStats(total=len(videos), skipped=len(videos) - len(todo))
    log.info("frame cache %s: %d videos, %d already stored, %d to do", cache_dir, stats.total, stats.skipped, len(todo))
    failed_log = Path(cache_dir) / FAILED
    try:
        for key, result in tqdm(_results(todo, workers), total=len(todo), disable=not progress, unit="video"):
            if isinstance(result, str):
                stats.failed += 1
                log.warning("frame cache: skipping %s: %s", key, result)
                with failed_log.open("a") as f:
                    f.write(json.dumps({"key": key, "reason": result}) + "\n")
                continue
            writer.add(result.key, result.num_frames, result.frames, result.jpegs, result.height, result.width)
            stats.written += 1
    finally:
        writer.close()
    log.info("frame cache %s: %d written, %d skipped (already there), %d failed", cache_dir,
             stats.written, stats.skipped, stats.failed)
    return stats


def videos_of(cfg: DictConfig) -> list[tuple[str, str]]:
    """(cache key, path) of every video in the configured splits; keys are relative to decoder.video_root."""
    splits = assembly.load_splits(cfg, *cfg.splits)
    root = Path(cfg.decoder.video_root)
    out = []
    for name in cfg.splits:
        for path in splits[name].video_paths:
            try:
                out.append((Path(path).relative_to(root).as_posix(), str(path)))
            except ValueError:
                raise ConfigError(f"video {path} of split {name!r} is not under decoder.video_root={root}; "
                                  "set decoder.video_root to the folder that holds the videos") from None
    return out


def run_build(cfg: DictConfig) -> BuildStats:
    c = cfg.cache
    stats = build_frame_cache(videos_of(cfg), cfg.decoder.cache_dir, instantiate(cfg.source),
                              candidates=c.candidates, short_side=c.short_side, quality=c.quality,
                              workers=c.workers, shard_mb=c.shard_mb, progress=cfg.progress)
    log.info("frame cache at %s: %s", cfg.decoder.cache_dir, stats)
    return stats
