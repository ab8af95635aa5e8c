"""The decoder contract: count a video's frames, decode only the frames asked for.

Every backend (decord on the CPU, NVDEC on the GPU, pre-extracted frame folders) implements
`Decoder`, so datasets never know which one runs. Failures caused by the video file itself are
`VideoDecodeError` (vop/data/decode_error.py, exported here with `Decoder`), which names the file:
with thousands of videos that is the one detail a user needs to find and replace the broken file.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch

from vop.data.decode_error import VideoDecodeError  # part of the contract: decoders raise it, callers catch it
from vop.data.frame_sampling import frame_indices


class Decoder(ABC):
    """Reads frames of one video file at a time; holds no open files between calls.

    Instances are built in the main process and forked into data workers, so an implementation
    must open the file inside each call rather than cache readers or file handles.
    """

    @property
    def deferred(self) -> bool:
        """True when `read` returns DeferredFrames (decoded later on the device, not in the workers)."""
        return False

    @abstractmethod
    def num_frames(self, path: str | Path) -> int:
        """Number of frames the video at `path` reports.

        A file cut short after its index may promise frames it no longer holds; `decode` raises
        VideoDecodeError when asked for them.
        """

    @abstractmethod
    def decode(self, path: str | Path, indices: np.ndarray) -> torch.Tensor:
        """Decode exactly the frames `indices` (int, [T], may repeat) -> uint8 [T, H, W, 3] RGB.

        Only the requested frames are returned; the whole video is never materialised.
        """

    def read(self, path: str | Path, count: int, mode: str, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Sample `count` frames (see `frame_indices`) and decode them -> uint8 [count, H, W, 3].

        Backends that can count and decode with one open file override this (decord: ~25% faster
        on short clips); the result must equal `decode(path, sample_indices(...))`.
        """
        indices = sample_indices(path, self.num_frames(path), count, mode, rng)  # [count]
        return self.decode(path, indices)


def check_indices(path: str | Path, indices: np.ndarray, num_frames: int) -> np.ndarray:
    """Validate caller-supplied indices against a video's length; returns them as int64 [T]."""
    indices = np.asarray(indices)
    if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"decode({str(path)!r}): indices must be a non-empty 1-d integer array, got "
                         f"shape {indices.shape} dtype {indices.dtype}")
    if indices.min() < 0 or indices.max() >= num_frames:
        raise ValueError(f"decode({str(path)!r}): indices must lie in [0, {num_frames}), got "
                         f"min {indices.min()} max {indices.max()}")
    return indices.astype(np.int64)


def sample_indices(
    path: str | Path, total: int, count: int, mode: str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """`frame_indices` for the video at `path` with `total` frames; a frameless video is a decode error."""
    if total <= 0:
        raise VideoDecodeError(path, f"it has {total} frames")
    return frame_indices(total, count, mode, rng)


def read_frames(
    decoder: Decoder,
    path: str | Path,
    count: int,
    mode: str,
    rng: np.random.Generator | None = None,
) -> torch.Tensor:
    """Sample `count` frames of the video at `path` (see `frame_indices`) -> uint8 [count, H, W, 3].

    Raises VideoDecodeError (naming `path`) for unreadable files and videos with 0 frames.
    """
    return decoder.read(path, count, mode, rng)


def read_window(decoder: Decoder, path: str | Path, window, count: int, mode: str,
                rng: np.random.Generator | None = None) -> torch.Tensor:
    """Sample `count` frames within `window` (a vop.data.windows.Window: frames [first, stop)) as
    `frame_indices` samples a whole video, and decode only those -> uint8 [count, H, W, 3]."""
    if window.stop <= window.first:
        raise VideoDecodeError(path, f"its window [{window.first}, {window.stop}) holds no frame")
    indices = window.first + sample_indices(path, window.stop - window.first, count, mode, rng)  # [count]
    return decoder.decode(path, indices)
