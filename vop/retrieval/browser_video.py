"""Videos the search page can play: a browser plays H.264, VP8, VP9 and AV1 in mp4, WebM or
Matroska, not AVI, MPEG, FLV, WMV or MPEG-4 Part 2 (Chromium shows a dead grey player for them).

Such a file (judged by its suffix and the codec the server's header probe read) is transcoded once, on its first request, into an H.264 mp4 (yuv420p, video only:
the page previews what the model saw) in a cache folder, and that copy is served from then on;
a copy is known by the source's path, size and modification time, so a changed file is
transcoded again. The transcode decodes and encodes with PyAV (FFmpeg), which the project
already uses to write videos; a stream copy would not do, as AVI often holds MPEG-4 Part 2.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import av

log = logging.getLogger(__name__)

DIRECT_SUFFIXES = (".mp4", ".m4v", ".webm", ".mkv")
PLAYABLE_CODECS = ("h264", "vp8", "vp9", "av1")


def plays_in_browser(path: Path, codec: str) -> bool:
    """Whether a browser plays `path` as it is: its container (by suffix) and its first video codec."""
    return path.suffix.lower() in DIRECT_SUFFIXES and codec in PLAYABLE_CODECS


def transcode(source: Path, target: Path) -> None:
    """`source`'s first video stream as H.264 in an mp4 at `target` (written beside it, then moved in)."""
    partial = target.with_name(target.name + ".part")
    with av.open(str(source)) as src, av.open(str(partial), mode="w", format="mp4") as out:
        video = src.streams.video[0]
        rate = video.average_rate or video.guessed_rate or 25
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = video.codec_context.width // 2 * 2, video.codec_context.height // 2 * 2
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "23", "preset": "veryfast"}
        for frame in src.decode(video):
            frame = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
            frame.pts = None  # the encoder numbers frames at `rate`
            out.mux(stream.encode(frame))
        out.mux(stream.encode())  # flush delayed frames
    os.replace(partial, target)


class BrowserCopies:
    """`playable(path, codec)`: `path` itself, or its cached H.264 copy, made on first use."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def key(self, path: Path) -> str:
        info = path.stat()
        stamp = f"{path.resolve()}\0{info.st_size}\0{info.st_mtime_ns}"
        return hashlib.sha256(stamp.encode()).hexdigest()[:24]

    def playable(self, path: Path, codec: str) -> Path:
        if plays_in_browser(path, codec):
            return path
        key = self.key(path)
        target = self.folder / f"{key}.mp4"
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # two range requests of one new file: one transcode
            if not target.is_file():
                self.folder.mkdir(parents=True, exist_ok=True)
                log.info("transcoding %s for the browser into %s", path, target)
                transcode(path, target)
        return target
