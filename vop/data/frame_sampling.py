"""Which frames of a video to decode: one per equal temporal segment.

The video's frames [0, num_frames) are split into `count` equal, possibly fractional, segments
of length L = num_frames / count (frame k is "on screen" over [k, k+1)):

- `uniform`: the frame on screen at each segment's temporal centre, floor((i + 0.5) * L).
  For odd integer L that is the exact middle frame; for even L it is the upper of the two middle
  frames (X-Pool/CLIP4Clip take the lower one: a one-frame difference, documented here on purpose).
- `rand`: the frame on screen at a uniformly random time inside each segment, floor((i + u) * L),
  u ~ U[0, 1). For integer L every frame of the segment is equally likely.

Both rules stay sorted and inside [0, num_frames) for any positive num_frames, so a video shorter
than `count` repeats frames instead of failing.

`xpool_uniform` / `xpool_rand` are X-Pool's own rules (also the released VoP code's), for exact
reproduction: segment edges e_i = int(i * n / count) (numpy's linspace, truncated); `uniform` takes
(e_i + e_{i+1} - 1) // 2 (the lower middle frame), `rand` one of e_i .. e_{i+1} - 2 (its segment
minus the last frame; a one-frame segment, where X-Pool's `random.choice` fails, takes e_i); a video
shorter than `count` takes each of its frames once and repeats the last one.
"""
from __future__ import annotations

import numpy as np

SAMPLING_MODES = ("uniform", "rand", "xpool_uniform", "xpool_rand")


def frame_indices(
    num_frames: int, count: int, mode: str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Return `count` sorted frame indices (int64) of a video with `num_frames` frames.

    `rng` is required for `mode="rand"`: data workers are forked, so a hidden global RNG would give
    every worker the same "random" frames.
    """
    num_frames, count = int(num_frames), int(count)
    if num_frames <= 0:
        raise ValueError(f"frame_indices: num_frames must be positive, got {num_frames}")
    if count <= 0:
        raise ValueError(f"frame_indices: count must be positive, got {count}")
    segment = np.arange(count, dtype=np.int64)  # [count]
    if mode == "uniform":
        # Integer arithmetic: floor((2i + 1) * n / (2 * count)) is exact, no float rounding.
        return (2 * segment + 1) * num_frames // (2 * count)
    if mode == "rand":
        if rng is None:
            raise ValueError("frame_indices: mode='rand' needs an rng (np.random.Generator)")
        offsets = rng.random(count)  # [count] in [0, 1)
        times = (segment + offsets) * (num_frames / count)
        # min() guards the float edge where (i + u) * L rounds up to num_frames.
        return np.minimum(np.floor(times).astype(np.int64), num_frames - 1)
    if mode in ("xpool_uniform", "xpool_rand"):
        return xpool_indices(num_frames, count, mode == "xpool_rand", rng)
    raise ValueError(f"frame_indices: unknown sampling mode {mode!r}; allowed values: {', '.join(SAMPLING_MODES)}")


def xpool_indices(num_frames: int, count: int, random: bool, rng: np.random.Generator | None) -> np.ndarray:
    """X-Pool's frame indices (see the module docstring); `rng` is needed when `random`."""
    if random and rng is None:
        raise ValueError("frame_indices: mode='xpool_rand' needs an rng (np.random.Generator)")
    segments = min(count, num_frames)
    edges = np.linspace(0, num_frames, segments + 1).astype(np.int64)  # [segments + 1]
    starts, ends = edges[:-1], edges[1:] - 1  # X-Pool's (start, end) pairs
    if random:
        width = np.maximum(ends - starts, 1)  # choices in range(start, end); a one-frame segment: start
        picked = starts + np.floor(rng.random(segments) * width).astype(np.int64)
    else:
        picked = (starts + ends) // 2
    return np.concatenate([picked, np.full(count - segments, picked[-1], dtype=np.int64)])
