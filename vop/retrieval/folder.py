"""A folder of videos (plus an optional caption file) as a `Split`, for galleries outside a dataset."""
from __future__ import annotations

import json
from pathlib import Path

from vop.data.split import Split
from vop.errors import MissingFileError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


def is_video_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def folder_split(videos: str | Path, captions: str | Path | None = None) -> Split:
    """Every video file under `videos` (recursively, sorted); ids are paths relative to it without suffix.

    `captions`: a JSON object {video id: caption or [captions]}; videos without captions are fine
    (they can still be found by text), a caption naming an unknown video is an error.
    """
    root = Path(videos)
    if not root.is_dir():
        raise MissingFileError(f"videos={root}: not a folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and is_video_file(p))
    if not paths:
        raise MissingFileError(f"videos={root}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    ids = [str(p.relative_to(root).with_suffix("")) for p in paths]
    texts, owners = [], []
    if captions is not None:
        mapping = json.loads(Path(captions).read_text())
        if not isinstance(mapping, dict):
            raise ValueError(f"captions={captions}: expected a JSON object {{video id: caption or [captions]}}")
        row = {vid: i for i, vid in enumerate(ids)}
        unknown = sorted(set(mapping) - set(row))
        if unknown:
            raise KeyError(f"captions={captions}: {len(unknown)} ids have no video under {root}, e.g. {unknown[:3]}")
        for vid, value in mapping.items():
            for text in [value] if isinstance(value, str) else value:
                texts.append(str(text))
                owners.append(row[vid])
    return Split("folder", ids, paths, texts, owners, info={"root": str(root)})
