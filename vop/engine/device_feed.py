"""Puts loader batches on the training device, one batch ahead of the step that uses it.

On CUDA, batch n+1 is copied (pinned uint8, non_blocking) and, for deferred frames, decoded
(nvJPEG / NVDEC, see vop/data/deferred.py) on a side stream while the model runs step n on the
default stream; the step's stream waits for the copy before it touches the batch. On the CPU it is
a pass-through that only materialises deferred frames (so the same code path runs in tests).
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch

from vop.data.deferred import DeferredBatch


def to_device(batch: dict, device: torch.device) -> dict:
    """Tensors -> `device` (non_blocking), deferred videos -> decoded uint8 on `device`; other values as they are."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, DeferredBatch):
            value = value.materialize(device)
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
        out[key] = value
    return out


class DeviceFeed:
    """Iterate `loader` with each batch already on `device`; `len()` is the loader's."""

    def __init__(self, loader: Iterable[dict], device: torch.device, prefetch: bool = True):
        self.loader, self.device, self.prefetch = loader, torch.device(device), prefetch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict]:
        if self.device.type != "cuda" or not self.prefetch:
            for batch in self.loader:
                yield to_device(batch, self.device)
            return
        yield from self._prefetched()

    def _prefetched(self) -> Iterator[dict]:
        side = torch.cuda.Stream(self.device)
        batches = iter(self.loader)
        ahead = self._load(batches, side)
        while ahead is not None:
            torch.cuda.current_stream(self.device).wait_stream(side)
            batch = ahead
            for value in batch.values():
                if isinstance(value, torch.Tensor) and value.device.type == "cuda":
                    # Memory made on the side stream is in use on this stream too: the allocator must
                    # not recycle it before this step's kernels ran.
                    value.record_stream(torch.cuda.current_stream(self.device))
            ahead = self._load(batches, side)  # queued on the side stream while the caller computes
            yield batch

    def _load(self, batches: Iterator[dict], side: torch.cuda.Stream) -> dict | None:
        try:
            batch = next(batches)
        except StopIteration:
            return None
        with torch.cuda.stream(side):
            return to_device(batch, self.device)
