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
"""
from __future__ import annotations

import numpy as np

SAMPLING_MODES = ("uniform", "rand")


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
    raise ValueError(f"frame_indices: unknown sampling mode {mode!r}; allowed values: {', '.join(SAMPLING_MODES)}")
