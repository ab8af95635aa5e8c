"""Video files in a folder and the one rule that names them: the id of a video is its path relative to
the folder, without the suffix (`cats/my clip.mp4` -> `cats/my clip`).

A caption file may write an id with or without the suffix (`cats/my clip` or `cats/my clip.mp4`);
with one, it names exactly that file. Two files that answer one id (`x.mp4` and `x.mkv`) are
refused, naming both. The folder gallery (`retrieve.py videos=`) and the own-videos data set
(`data=custom`, vop/data/annotations/custom.py) both use this module, so a collection resolves
the same way in both.
"""
from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vop.errors import InputError

log = logging.getLogger(__name__)

# The containers a collection may hold (every decoder opens them through FFmpeg): the one list of the
# benchmark parsers, data=custom, folder galleries, query detection and the search page's uploads.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp", ".wmv")


def is_video_file(path: str | Path) -> bool:
    """Whether `path` ends with one of VIDEO_SUFFIXES (any letter case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_id(path: Path, root: Path) -> str:
    """The id of the video file `path` under `root`: the relative path without its suffix, with `/`."""
    return path.relative_to(root).with_suffix("").as_posix()


@dataclass(frozen=True)
class VideoFolder:
    """Every video file under `root`, by id (sorted by path)."""

    root: Path
    files: dict[str, Path]

    def resolve(self, written: str) -> str | None:
        """The id that `written` (an id, or a file's relative path with its suffix) names; None if none."""
        name = PurePosixPath(written).as_posix()
        if name in self.files:
            return name
        if is_video_file(name):
            stem = PurePosixPath(name).with_suffix("").as_posix()
            path = self.files.get(stem)
            if path is not None and path.relative_to(self.root).as_posix() == name:
                return stem
        return None

    def nearest(self, written: str) -> str | None:
        """The file (its path relative to the folder, with its suffix) whose name is closest to `written`,
        for a "did you mean"; None when no name is close. A name with the wrong suffix gets the file of its
        id; otherwise difflib's closest (ratio at least 0.6): an id written without a suffix among the
        ids, one with a suffix among the files' relative paths."""
        by_id = {vid: path.relative_to(self.root).as_posix() for vid, path in self.files.items()}
        name = PurePosixPath(written).as_posix()
        if is_video_file(name):
            stem = PurePosixPath(name).with_suffix("").as_posix()
            if stem in by_id:
                return by_id[stem]
            match = difflib.get_close_matches(name, list(by_id.values()), n=1, cutoff=0.6)
            return match[0] if match else None
        match = difflib.get_close_matches(name, list(by_id), n=1, cutoff=0.6)
        return by_id[match[0]] if match else None

    def describe_lookup(self, written: str) -> str:
        """What `resolve` looked for, for an error message."""
        if is_video_file(written):
            return f"{self.root / written}"
        return f"{self.root / written}.<{'|'.join(s[1:] for s in VIDEO_SUFFIXES)}>"


def list_videos(root: str | Path) -> VideoFolder:
    """The video files under the folder `root` (recursively); InputError when two of them share an id.

    Linked folders and files are followed; a link back into a folder already listed (a loop, or a
    second name for the same folder) is listed once, and a broken link is left out: each is named in
    a WARNING, and the files without a video suffix are counted in an INFO line. `root` must be a
    folder (callers say which key named it when it is not)."""
    root = Path(root).expanduser()
    found: list[Path] = []
    left_out: dict[Path, str] = {}
    others: list[Path] = []
    listed: dict[tuple[int, int], Path] = {}  # (device, inode) of every folder walked -> its first path
    for folder, subfolders, names in os.walk(root, followlinks=True):
        here = Path(folder)
        stat = here.stat()
        first = listed.setdefault((stat.st_dev, stat.st_ino), here)
        if first != here:
            left_out[here] = f"a link to {first}, which is listed already (a loop or a second name)"
            subfolders[:] = []
            continue
        subfolders.sort(key=lambda name: ((here / name).is_symlink(), name))  # real folders before links
        for name in names:
            path = here / name
            if not path.exists():
                left_out[path] = f"a broken link (to {os.readlink(path)})" if path.is_symlink() else "unreadable"
            elif is_video_file(path):
                found.append(path)
            else:
                others.append(path)
    for path, why in left_out.items():
        log.warning("%s: left out of the videos under %s: %s", path, root, why)
    if left_out:
        log.warning("%d entries under %s left out (named above)", len(left_out), root)
    if others:
        shown = ", ".join(str(p.relative_to(root)) for p in sorted(others)[:5])
        log.info("%d files under %s have no video suffix (%s) and are not videos: %s%s", len(others), root,
                 " ".join(VIDEO_SUFFIXES), shown, ", ..." if len(others) > 5 else "")
    files: dict[str, Path] = {}
    for path in sorted(found):
        vid = video_id(path, root)
        if vid in files:
            raise InputError(f"two video files under {root} answer the video id {vid!r}: {files[vid]} and {path}; "
                             "an id is the path without its suffix, so rename or remove one of them")
        files[vid] = path
    return VideoFolder(root, files)
