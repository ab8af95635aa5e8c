"""A folder of videos (plus an optional caption file) as a `Split`, for galleries outside a dataset."""
from __future__ import annotations

from pathlib import Path

from vop.data.annotations.custom import FORMATS, captions_by_video
from vop.data.split import Split
from vop.data.video_files import VIDEO_SUFFIXES, list_videos
from vop.errors import InputError, MissingFileError


def folder_split(videos: str | Path, captions: str | Path | None = None) -> Split:
    """Every video file under `videos` (recursively, sorted); ids and their resolution: vop/data/video_files.py.

    `captions`: a captions file as `data=custom` reads it (.json `{video id: caption or [captions]}`,
    or .csv / .jsonl rows of video, caption; a `split` column is ignored: a gallery holds every
    video); videos without captions are fine (they can still be found by text), a caption naming an
    unknown video is an error naming the file, the line and the nearest file name.
    """
    root = Path(videos).expanduser()
    if not root.is_dir():
        raise MissingFileError(f"videos={videos}: {root} {'is not a folder' if root.exists() else 'does not exist'}")
    folder = list_videos(root)
    if not folder.files:
        raise MissingFileError(f"videos={videos}: no video files under {root} ({', '.join(VIDEO_SUFFIXES)})")
    ids, paths = list(folder.files), list(folder.files.values())
    texts, owners = [], []
    if captions is not None:
        path = Path(captions).expanduser()
        if not path.is_file():
            raise MissingFileError(f"captions={captions}: {path} is not a file")
        if path.suffix.lower() not in FORMATS:
            raise InputError(f"captions={captions}: unknown format {path.suffix or '(no suffix)'!r}; use "
                             f"{', '.join(FORMATS)} (docs/own_videos.md)")
        row = {vid: i for i, vid in enumerate(ids)}
        for vid, captions_of_video in captions_by_video(path, folder, "videos=").items():
            texts.extend(captions_of_video)
            owners.extend([row[vid]] * len(captions_of_video))
    return Split("folder", ids, paths, texts, owners, info={"root": str(root)})
