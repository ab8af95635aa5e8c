"""Decoders that fail on chosen videos, for testing the bad-video policy on both sides of a batch.

`FailingCpuDecoder` fails inside the data worker (like decord on a broken file); `FakeGpuDecoder`
behaves like NvdecDecoder: the worker only counts frames and draws indices, and the batch is decoded
later "on the device" (decord on the CPU here), where the chosen videos fail. Both accept the decord
config's keys, so `decoder._target_=tests.fake_gpu.FakeGpuDecoder +decoder.fail_on=[...]` trains.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vop.data.decoders.base import VideoDecodeError, sample_indices
from vop.data.decoders.decord import DecordDecoder
from vop.data.deferred import DeferredBatch, DeferredFrames
from vop.data.frames import fit_frames


def _fails(path: str | Path, fail_on: Sequence[str]) -> bool:
    return Path(path).name in set(fail_on)


class FailingCpuDecoder(DecordDecoder):
    def __init__(self, fail_on: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.fail_on = list(fail_on)

    def read(self, path, count, mode, rng=None):
        if _fails(path, self.fail_on):
            raise VideoDecodeError(path, "chosen to fail")
        return super().read(path, count, mode, rng)


class FakeGpuDecoder(DecordDecoder):
    def __init__(self, fail_on: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.fail_on = list(fail_on)

    def read(self, path, count, mode, rng=None):
        indices = sample_indices(path, self.num_frames(path), count, mode, rng)
        return FakeGpuFrames(str(path), indices, self, _fails(path, self.fail_on))


@dataclass
class FakeGpuFrames(DeferredFrames):
    path: str
    indices: np.ndarray
    decoder: DecordDecoder
    fail: bool
    size: int | None = None

    @classmethod
    def collate(cls, items: Sequence["FakeGpuFrames"]) -> "FakeGpuBatch":
        return FakeGpuBatch(list(items))


@dataclass
class FakeGpuBatch(DeferredBatch):
    items: list[FakeGpuFrames] = field(default_factory=list)
    decoded: int = 0  # how many videos were decoded "on the device"

    def __len__(self) -> int:
        return len(self.items)

    def decode_videos(self, device: torch.device) -> list[torch.Tensor | VideoDecodeError]:
        out = []
        for item in self.items:
            if item.fail:
                out.append(VideoDecodeError(item.path, "chosen to fail"))
                continue
            frames = DecordDecoder.decode(item.decoder, item.path, item.indices)  # [T, H, W, 3]
            out.append(fit_frames(frames, item.size).to(device))
        return out
