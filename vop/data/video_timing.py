"""A video file's frame rate, read from its container header (no frame decoded): what turns a
moment's frames into seconds (vop/data/windows.py)."""
from __future__ import annotations

from pathlib import Path

from vop.data.video_header import UnreadableHeader, moving_picture_streams


def frame_rate(path: str | Path) -> float:
    """Frames per second of the first moving-picture stream; UnreadableHeader when the file does not
    open, has no video stream or states no usable rate."""
    import av  # FFmpeg's bindings: loaded by whoever probes

    try:
        with av.open(str(path)) as container:
            streams = moving_picture_streams(container)
            if not streams:
                raise UnreadableHeader("it has no video stream")
            stream = streams[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as err:
        raise UnreadableHeader(f"{type(err).__name__}: {str(err)[:120]}") from None
    if not rate or float(rate) <= 0:
        raise UnreadableHeader("its header states no frame rate")
    return float(rate)
