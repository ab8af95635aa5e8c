"""A folder of videos (plus an optional caption file) as a `Split`, for galleries outside a dataset."""
from __future__ import annotations

import json
from pathlib import Path

from vop.data.split import Split
from vop.data.video_files import VIDEO_SUFFIXES, is_video_file, list_videos  # noqa: F401  (is_video_file: pipeline's)
from vop.errors import MissingFileError


def folder_split(videos: str | Path, captions: str | Path | None = None) -> Split:
    """Every video file under `videos` (recursively, sorted); ids and their resolution: vop/data/video_files.py.

    `captions`: a JSON object {video id: caption or [captions]}, an id written with or without its
    suffix; videos without captions are fine (they can still be found by text), a caption naming an
    unknown video is an error.
    """
    root = Path(videos)
    if not root.is_dir():
        raise MissingFileError(f"videos={root}: not a folder")
    folder = list_videos(root)
    if not folder.files:
        raise MissingFileError(f"videos={root}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    ids, paths = list(folder.files), list(folder.files.values())
    texts, owners = [], []
    if captions is not None:
        mapping = json.loads(Path(captions).read_text())
        if not isinstance(mapping, dict):
            raise ValueError(f"captions={captions}: expected a JSON object {{video id: caption or [captions]}}")
        row = {vid: i for i, vid in enumerate(ids)}
        resolved = {written: folder.resolve(written) for written in mapping}
        unknown = sorted(written for written, vid in resolved.items() if vid is None)
        if unknown:
            raise KeyError(f"captions={captions}: {len(unknown)} ids have no video under {root}, e.g. {unknown[:3]}")
        for written, value in mapping.items():
            for text in [value] if isinstance(value, str) else value:
                texts.append(str(text))
                owners.append(row[resolved[written]])
    return Split("folder", ids, paths, texts, owners, info={"root": str(root)})
