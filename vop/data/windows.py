"""Moments of a long video: fixed windows that slide over it, each one a row to encode.

A window covers the frames [first, stop) of its video, which is [start, end) seconds at the video's
frame rate. Windows of `window` seconds start every `stride` seconds from 0; the last one is aligned
to the video's end (so the end is always covered and no window runs past it), and a video shorter
than one window is one row of its whole length. Evaluation samples a row's T frames uniformly
within its window (vop/data/dataset.py), so a moment is encoded exactly as a whole clip is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from vop.data.decode_error import VideoDecodeError
from vop.data.video_header import UnreadableHeader
from vop.data.video_timing import frame_rate
from vop.metrics.moments import DIDEMO_MOMENTS, DIDEMO_SECONDS


@dataclass(frozen=True)
class Window:
    """One moment: frames [first, stop) of its video, [start, end] seconds."""

    first: int
    stop: int
    start: float
    end: float


def window_frames(num_frames: int, fps: float, window: float, stride: float) -> list[tuple[int, int]]:
    """[first, stop) frame ranges of the windows of a video of `num_frames` frames at `fps`."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"moments: window and stride must be > 0 seconds, got window={window} stride={stride}")
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"moments: a video needs frames and a frame rate, got {num_frames} frames at {fps} fps")
    size = max(1, round(window * fps))
    step = max(1, round(stride * fps))
    if num_frames <= size:
        return [(0, num_frames)]
    starts = list(range(0, num_frames - size, step))
    if starts[-1] != num_frames - size:
        starts.append(num_frames - size)  # the last window ends with the video
    return [(s, s + size) for s in starts]


def didemo_windows(num_frames: int, fps: float) -> list[Window]:
    """DiDeMo's candidate moments of a video (vop/metrics/moments.py DIDEMO_MOMENTS, in that order): every span of
    whole 5-second segments, cut at the video's end; a span whose last segment starts at or after the end is
    left out (a shorter video has fewer segments, as its annotations do)."""
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"moments: a video needs frames and a frame rate, got {num_frames} frames at {fps} fps")
    rows = []
    for first, last in DIDEMO_MOMENTS:
        if round(DIDEMO_SECONDS * last * fps) >= num_frames:
            continue
        a = round(DIDEMO_SECONDS * first * fps)
        b = min(num_frames, round(DIDEMO_SECONDS * (last + 1) * fps))
        rows.append(Window(a, b, a / fps, b / fps))
    return rows


def span_window(decoder, path, span: tuple[float, float]) -> Window:
    """The frames of the video at `path` that [start, end] seconds cover (a gallery row's span back to
    frames, for its thumbnails): at least one frame, within the video."""
    try:
        fps = frame_rate(path)
    except UnreadableHeader as err:
        raise VideoDecodeError(path, f"its frame rate cannot be read ({err})") from None
    total = decoder.num_frames(path)
    first = min(max(0, math.floor(span[0] * fps + 1e-6)), max(total - 1, 0))
    stop = min(total, max(first + 1, math.ceil(span[1] * fps - 1e-6)))
    return Window(first, stop, span[0], span[1])


def plan_windows(num_frames: int, fps: float, window: float, stride: float) -> list[Window]:
    """The windows of one video, with their times in seconds."""
    return [Window(first, stop, first / fps, stop / fps) for first, stop in window_frames(num_frames, fps, window,
                                                                                          stride)]


def shot_windows(shots: list[tuple[int, int]], num_frames: int, fps: float, window: float | None = None,
                 stride: float | None = None) -> list[Window]:
    """Each shot [first, stop) of a video as a window; with `window`, a shot longer than it is cut into windows
    (every `stride` seconds, the last aligned to the shot's end) as a video is. Shots are clipped to the
    video's frames, the last one running to the video's end (PySceneDetect's versions differ by a frame about
    where the last scene ends); none left: the whole video."""
    rows = []
    shots = [(first, stop) for first, stop in shots if first < num_frames]
    if shots:
        shots[-1] = (shots[-1][0], num_frames)
    for first, stop in shots:
        first, stop = max(0, first), min(stop, num_frames)
        if stop <= first:
            continue
        parts = window_frames(stop - first, fps, window, stride) if window is not None else [(0, stop - first)]
        rows.extend(Window(first + a, first + b, (first + a) / fps, (first + b) / fps) for a, b in parts)
    return rows or [Window(0, num_frames, 0.0, num_frames / fps)]
