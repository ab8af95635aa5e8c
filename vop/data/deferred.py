"""Frames that a data worker cannot (or should not) produce: decoded later, batched, on the device.

A DataLoader worker is a forked CPU process: it cannot touch CUDA, and decoding there what a GPU
decodes ten times faster wastes the worker. A decoder may therefore return a `DeferredFrames` item
instead of a uint8 tensor (JPEG bytes from the frame cache, or a video path + frame indices for
NVDEC). `fit_frames` records the target size on it, `stack_videos` collates such items into a
`DeferredBatch`, and `vop.engine.device_feed.DeviceFeed` calls `materialize(device)` in the main
process, which returns the same uint8 [B, T, S, S, 3] a tensor batch would have been.

A video that fails to decode there comes back from `decode_videos` as its `VideoDecodeError`
(naming the file) instead of ending the run: in training, `vop.data.bad_videos.BadVideoReplacer`
replaces it exactly as a data worker replaces a video that fails on the CPU.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Sequence

import torch

from vop.data.decode_error import VideoDecodeError


class DeferredFrames(ABC):
    """One video's frames, still to be decoded. Subclasses are dataclasses with a `size` field."""

    size: int | None

    def fitted(self, size: int) -> "DeferredFrames":
        """The same frames, to be shaped like `fit_frames(..., size)` once decoded."""
        return replace(self, size=size)

    @classmethod
    @abstractmethod
    def collate(cls, items: Sequence["DeferredFrames"]) -> "DeferredBatch":
        """Stack items of this class into one batch (cheap: no decoding)."""


class DeferredBatch(ABC):
    """A batch of deferred videos; `materialize` decodes it on `device` -> uint8 [B, T, S, S, 3]."""

    @abstractmethod
    def decode_videos(self, device: torch.device) -> list[torch.Tensor | VideoDecodeError]:
        """Each video -> uint8 [T, S, S, 3] on `device`, or the VideoDecodeError that names it."""

    def materialize(self, device: torch.device) -> torch.Tensor:
        """-> uint8 [B, T, S, S, 3] on `device`; the first video that fails raises its VideoDecodeError."""
        videos = self.decode_videos(device)
        for video in videos:
            if isinstance(video, VideoDecodeError):
                raise video
        return torch.stack(videos)

    @abstractmethod
    def __len__(self) -> int:
        ...

    @property
    def shape(self) -> tuple[int]:
        # Lets code that counts videos with `batch["video"].shape[0]` work before materialising.
        return (len(self),)

    def pin_memory(self) -> "DeferredBatch":
        # The DataLoader's pin-memory thread calls this; encoded bytes need no pinning (nvJPEG and
        # NVDEC read them from pageable memory), so the batch passes through unchanged.
        return self


def stack_videos(videos: Sequence[torch.Tensor | DeferredFrames]) -> torch.Tensor | DeferredBatch:
    """Collate one batch: uint8 tensors [T, S, S, 3] -> [B, T, S, S, 3]; deferred items -> their batch."""
    first = videos[0]
    if isinstance(first, DeferredFrames):
        kinds = {type(v) for v in videos}
        if len(kinds) != 1:
            raise TypeError(f"stack_videos: one batch mixes deferred kinds {sorted(k.__name__ for k in kinds)}")
        return type(first).collate(videos)
    return torch.stack(list(videos))
