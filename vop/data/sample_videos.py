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


def write_audio_only(path: str | Path, codec: str = "aac", seconds: float = 1.0, cover_art: bool = False) -> Path:
    """A file a user may take for a video that holds no moving picture: a 440 Hz tone in `codec`
    (`aac`, or `pcm_s16le` for uncompressed audio) in an mp4 container whatever the file's suffix
    (an .m4a under a video's name); `cover_art` adds a still PNG as an attached picture, as music
    files carry their album cover (FFmpeg lists it as a video stream)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate, chunk = 16000, 1024
    sample_format = "fltp" if codec == "aac" else "s16"
    with av.open(str(path), mode="w", format="mp4") as out:
        audio = out.add_stream(codec, rate=rate)
        audio.layout = "mono"
        if cover_art:
            picture = out.add_stream("png")
            picture.width, picture.height, picture.pix_fmt = 64, 48, "rgb24"
            picture.disposition = av.stream.Disposition.attached_pic
            still = av.VideoFrame.from_ndarray(render_frame(0, 64, 48), format="rgb24")
            still.pts = 0
            out.mux(picture.encode(still))
            out.mux(picture.encode())
        total = int(rate * seconds)
        for start in range(0, total, chunk):
            tone = np.sin(2 * np.pi * 440 * np.arange(start, min(start + chunk, total)) / rate)  # [n]
            samples = tone.astype(np.float32) if sample_format == "fltp" else (tone * 8000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples[None], format=sample_format, layout="mono")
            frame.rate, frame.pts = rate, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return path
