"""Generated test and benchmark videos whose frames say which frame they are.

Frame t is filled with the grey level `frame_level(t)` plus a moving bar, so a decoder that
returns the wrong frame after a seek is caught by reading one pixel block. `gop` sets the
keyframe interval: web uploads often have one keyframe every 5-10 s (250 frames at 25 fps), the
case where seeking decoders must decode far from a keyframe.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def frame_level(t: int) -> int:
    """The grey level of frame t: steps of 9 over 24 levels, far apart after H.264 compression."""
    return 20 + 9 * (t % 24)


def render_frame(t: int, width: int, height: int) -> np.ndarray:
    """uint8 [height, width, 3]: grey `frame_level(t)`, a white bar moving right in the lower half."""
    frame = np.full((height, width, 3), frame_level(t), dtype=np.uint8)
    bar = max(width // 16, 2)
    x = (t * 3) % max(width - bar, 1)
    frame[height // 2:, x:x + bar] = 255
    return frame


def write_video(path: str | Path, frames: int, width: int, height: int, fps: int = 25, gop: int = 250,
                bframes: int = 2, crf: int = 20) -> Path:
    """H.264 yuv420p mp4 with a keyframe every `gop` frames and `bframes` B-frames (reordering)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # scenecut=0: no extra keyframes, so the interval is exactly `gop`, as in the uploads modelled.
        stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(gop), "keyint_min": str(gop),
                          "bf": str(bframes), "x264-params": "scenecut=0"}
        for t in range(frames):
            image = av.VideoFrame.from_ndarray(render_frame(t, width, height), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())
    return path


def reencode(src: str | Path, dst: str | Path, gop: int, width: int | None = None, height: int | None = None,
             max_frames: int | None = None) -> Path:
    """Re-encode a real video with another keyframe interval (and size), keeping its frame rate."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), mode="w") as out:
        source = inp.streams.video[0]
        rate = source.average_rate or 25
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = width or source.codec_context.width, height or source.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "g": str(gop), "keyint_min": str(gop),
                          "x264-params": "scenecut=0"}
        for t, frame in enumerate(inp.decode(source)):
            if max_frames is not None and t >= max_frames:
                break
            # A fresh frame: the decoded one carries the source's picture types, which would make
            # x264 place keyframes where the source had them instead of every `gop` frames.
            rgb = frame.to_ndarray(format="rgb24", width=stream.width, height=stream.height)
            image = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            image.pts, image.time_base = t, 1 / rate  # constant frame rate, numbered from 0
            out.mux(stream.encode(image))
        out.mux(stream.encode())
    return dst
