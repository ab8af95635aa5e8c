"""What a video file's container header says, read without decoding a frame: FFmpeg's demuxer
names, the codecs of its moving-picture streams (cover art, an "attached picture", left out) and
what its other streams are.

One cheap probe for everything that must know whether a file is a video before using it: the
test-split check before a run (vop/data/bad_videos.py), the search server, which sends only
video files and transcodes what a browser cannot play (vop/retrieval/served_videos.py), and the
decoders, which say "it has no video stream" for an audio-only file rather than their library's
own words (an index error, "cannot find video stream with wanted index: -1").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NO_VIDEO_STREAM = "it has no video stream"


@dataclass(frozen=True)
class VideoHeader:
    formats: frozenset[str]  # FFmpeg's names of the demuxer: {"mov", "mp4", "m4a", ...}, {"png_pipe"}
    codecs: tuple[str, ...]  # the moving-picture streams' codecs, in stream order: ("h264",)
    others: tuple[str, ...] = ()  # the other streams, in stream order: ("audio aac", "cover art png")

    @property
    def no_video(self) -> str | None:
        """Why no frame can come from the file, "it has no video stream (only audio aac)"; None when
        it has a moving-picture stream."""
        if self.codecs:
            return None
        return f"{NO_VIDEO_STREAM} ({'only ' + ', '.join(self.others) if self.others else 'no stream at all'})"


class UnreadableHeader(Exception):
    """The file does not open as a media container; the message says why."""


def moving_picture_streams(container) -> list:
    """The video streams of an open PyAV container that are videos: cover art is a video stream to
    FFmpeg (an attached picture), but one still image."""
    import av

    return [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]


def _describe(stream) -> str:
    """"audio aac", "cover art png", "subtitle mov_text", "data": a stream that is not a video."""
    import av

    codec = getattr(stream.codec_context, "name", None) if stream.type in ("audio", "video", "subtitle") else None
    kind = "cover art" if stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic \
        else stream.type
    return f"{kind} {codec}" if codec else kind


def header_of(container) -> VideoHeader:
    """The header of an open PyAV container."""
    videos = moving_picture_streams(container)
    return VideoHeader(frozenset(container.format.name.split(",")), tuple(s.codec_context.name for s in videos),
                       tuple(_describe(s) for s in container.streams if s not in videos))


def read_video_header(path: str | Path) -> VideoHeader:
    """The header of the file at `path`; UnreadableHeader if FFmpeg cannot open it."""
    import av  # FFmpeg's bindings: loaded by whoever probes, not by every importer of the data layer

    try:
        with av.open(str(path)) as container:
            return header_of(container)
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as err:
        raise UnreadableHeader(f"{type(err).__name__}: {str(err)[:120]}") from None


def missing_video_stream(path: str | Path) -> str | None:
    """For a decoder that could not use the file at `path`: "it has no video stream (only audio aac)"
    when its header opens and holds no moving picture; None when it holds one or does not open
    (the decoder's own reason stands then)."""
    try:
        return read_video_header(path).no_video
    except UnreadableHeader:
        return None
