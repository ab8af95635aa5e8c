"""Shared by the data scripts: the splits a tools config selects, and the videos they reference."""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from vop.data.split import Split
from vop.errors import ConfigError


def load_selected_splits(cfg: DictConfig) -> dict[str, Split]:
    """The parser's splits, restricted to `cfg.splits` when given (an unknown name is an error)."""
    # A partial called here: a missing-data error reaches the user as written, not wrapped by Hydra.
    splits: dict[str, Split] = instantiate(cfg.data.splits, _partial_=True)()
    if cfg.splits:
        unknown = [s for s in cfg.splits if s not in splits]
        if unknown:
            raise ConfigError(f"data={cfg.data.name} has no split(s) {unknown}; it has {sorted(splits)}")
        splits = {name: splits[name] for name in cfg.splits}
    return splits


def unique_videos(splits: dict[str, Split]) -> list[tuple[str, Path]]:
    """(video_id, path) of every video referenced by `splits`, each path once, in split order."""
    seen: dict[str, tuple[str, Path]] = {}
    for split in splits.values():
        for video_id, path in zip(split.video_ids, split.video_paths):
            seen.setdefault(str(path), (video_id, Path(path)))
    return list(seen.values())
