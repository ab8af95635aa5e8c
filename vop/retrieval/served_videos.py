"""Which of a gallery's files the search server may send: video files only.

A gallery's paths are data from whoever built it, and the server streams the file of a row to any
page that asks for `/video/<row>`. So a row is served only when its path has a video suffix
(VIDEO_SUFFIXES) and names a regular file whose container FFmpeg opens as one of the video
container formats below with a video stream that is not a still picture (cover art). Naming
`notes.mp4` a text file, or `photo.mkv` an image, does not pass: FFmpeg would probe those as
`png_pipe`, `jpeg_pipe` or `tty`, which are not on the list. The check opens the file's header only
(no decoding) on the row's first request, and is cached while the file's size and modification
time stay the same.
"""
from __future__ import annotations

import mimetypes
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from vop.data.video_files import is_video_file
from vop.data.video_header import UnreadableHeader, VideoHeader, read_video_header

# FFmpeg demuxers of video containers (a format's name lists its aliases: "mov,mp4,m4a,3gp,3g2,mj2").
VIDEO_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm", "avi", "mpeg", "mpegts", "flv", "asf", "3gp"})
MIME_TYPES = {".mkv": "video/x-matroska", ".webm": "video/webm", ".m4v": "video/mp4", ".flv": "video/x-flv",
              ".3gp": "video/3gpp", ".wmv": "video/x-ms-wmv"}


@dataclass(frozen=True)
class Served:
    """A row's file as the server may send it: its path, content type and first video codec."""
    path: Path
    media_type: str
    codec: str


class NotServed(Exception):
    """A gallery row whose file the server will not send, and why (shown in the 404)."""


def media_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "video/mp4"


def video_container(path: Path) -> VideoHeader | str:
    """The header of the file at `path` if it is a video container with a moving-picture stream,
    else why not."""
    try:
        header = read_video_header(path)
    except UnreadableHeader as err:
        return f"it does not open as a video container ({str(err).split(':')[0]})"
    if not header.formats & VIDEO_CONTAINERS:
        return f"it is {','.join(sorted(header.formats))} data, not a video container"
    return header.no_video or header


class ServedVideos:
    """`check(path)`: the file to send for a gallery path, or NotServed saying why not."""

    def __init__(self) -> None:
        self._verdicts: dict[tuple, VideoHeader | str] = {}
        self._lock = threading.Lock()

    def check(self, path: str) -> Served:
        if not path or not is_video_file(path):
            raise NotServed("the gallery names no video file for this row")
        try:
            info = os.stat(path)  # follows a link: what would be sent
        except OSError:
            raise NotServed("the video file is gone since the gallery was built") from None
        if not stat.S_ISREG(info.st_mode):
            raise NotServed("the gallery's path for this row is not a regular file")
        stamp = (path, info.st_size, info.st_mtime_ns, info.st_ino)
        with self._lock:
            verdict = self._verdicts.get(stamp)
        if verdict is None:
            verdict = video_container(Path(path))
            with self._lock:
                self._verdicts[stamp] = verdict
        if isinstance(verdict, str):
            raise NotServed(f"not served: {verdict}")
        return Served(Path(path), media_type(Path(path)), verdict.codecs[0])
