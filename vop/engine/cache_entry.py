"""`scripts/build_frame_cache.py`: the dataset's videos (all requested splits) into the frame cache."""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from vop.data.frame_cache_build import BuildStats, build_frame_cache
from vop.engine import setup

log = logging.getLogger(__name__)


def videos_of(cfg: DictConfig) -> list[tuple[str, str]]:
    """(cache key, path) of every video in the configured splits; keys are relative to decoder.video_root."""
    splits = setup.load_splits(cfg, *cfg.splits)
    root = Path(cfg.decoder.video_root)
    out = []
    for name in cfg.splits:
        for path in splits[name].video_paths:
            try:
                out.append((Path(path).relative_to(root).as_posix(), str(path)))
            except ValueError:
                raise ValueError(f"video {path} of split {name!r} is not under decoder.video_root={root}; "
                                 "set decoder.video_root to the folder that holds the videos") from None
    return out


def run_build(cfg: DictConfig) -> BuildStats:
    c = cfg.cache
    stats = build_frame_cache(videos_of(cfg), cfg.decoder.cache_dir, instantiate(cfg.source),
                              candidates=c.candidates, short_side=c.short_side, quality=c.quality,
                              workers=c.workers, shard_mb=c.shard_mb, progress=cfg.progress)
    log.info("frame cache at %s: %s", cfg.decoder.cache_dir, stats)
    return stats
