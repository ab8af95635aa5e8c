"""What a video file's container header says, read without decoding a frame: FFmpeg's demuxer
names and the codecs of its moving-picture streams (cover art, an "attached picture", left out).

One cheap probe for everything that must know whether a file is a video before using it: the
test-split check before a run (vop/data/bad_videos.py) and the search server, which sends only
video files and transcodes what a browser cannot play (vop/retrieval/served_videos.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VideoHeader:
    formats: frozenset[str]  # FFmpeg's names of the demuxer: {"mov", "mp4", "m4a", ...}, {"png_pipe"}
    codecs: tuple[str, ...]  # the moving-picture streams' codecs, in stream order: ("h264",)


class UnreadableHeader(Exception):
    """The file does not open as a media container; the message says why."""


def read_video_header(path: str | Path) -> VideoHeader:
    """The header of the file at `path`; UnreadableHeader if FFmpeg cannot open it."""
    import av  # FFmpeg's bindings: loaded by whoever probes, not by every importer of the data layer

    try:
        with av.open(str(path)) as container:
            return VideoHeader(frozenset(container.format.name.split(",")),
                               tuple(s.codec_context.name for s in container.streams.video
                                     if not s.disposition & av.stream.Disposition.attached_pic))
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as err:
        raise UnreadableHeader(f"{type(err).__name__}: {str(err)[:120]}") from None
