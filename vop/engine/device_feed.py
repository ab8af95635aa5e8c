"""Puts loader batches on the training device, one batch ahead of the step that uses it.

On CUDA a background thread (vop/engine/prefetch.py) takes batch n+1 from the loader, copies it
(pinned uint8, non_blocking) and, for deferred frames, decodes it (nvJPEG / NVDEC, see
vop/data/deferred.py), all on a side stream, while the step runs batch n on the default stream.
The step's stream waits for an event recorded after batch n+1's work (not for the whole side
stream, which may already hold n+2's) and is recorded on the batch's tensors, so the caching
allocator does not reuse their memory before the step's kernels ran. On the CPU it is a
pass-through that only materialises deferred frames (the same code path runs in tests).

A deferred video that fails to decode on the device is replaced as a data worker would replace
it (`vop.data.bad_videos.BadVideoReplacer`) when the loader's dataset skips bad videos (training);
otherwise (evaluation) its VideoDecodeError, naming the video, propagates.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch

from vop.data.bad_videos import BadVideoReplacer
from vop.data.decoders.base import VideoDecodeError
from vop.data.deferred import DeferredBatch
from vop.engine.prefetch import Prefetcher


def decode_deferred(batch: dict, device: torch.device, replacer: BadVideoReplacer | None) -> torch.Tensor:
    """The batch's deferred "video" -> uint8 [B, T, S, S, 3] on `device`; bad videos replaced in `batch`."""
    videos = batch["video"].decode_videos(device)
    for position, video in enumerate(videos):
        if isinstance(video, VideoDecodeError):
            if replacer is None:
                raise video
            videos[position] = replacer.replace(batch, position, video, device)
    return torch.stack(videos)


def to_device(batch: dict, device: torch.device, replacer: BadVideoReplacer | None = None) -> dict:
    """Tensors -> `device` (non_blocking), deferred videos -> decoded uint8 on `device`; other values as they are.

    "item" stays on the host: the step reads its values (per-item augmentation seeds), which on
    the device would make the host wait for the GPU every step.
    """
    batch = dict(batch)
    if isinstance(batch.get("video"), DeferredBatch):
        batch["video"] = decode_deferred(batch, device, replacer)  # may replace items in `batch` first
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and key != "item":
            value = value.to(device, non_blocking=True)
        out[key] = value
    return out


@contextmanager
def on_stream(device: torch.device, stream: torch.cuda.Stream | None) -> Iterator[None]:
    """Make `device` and `stream` this thread's current ones (both are per thread); nothing without a stream."""
    if stream is None:
        yield
        return
    with torch.cuda.device(device), torch.cuda.stream(stream):
        yield


class DeviceFeed:
    """Iterate `loader` with each batch already on `device`; `len()` is the loader's.

    `prefetch` (default: on CUDA only) loads the next batch in a background thread.
    """

    def __init__(self, loader: Iterable[dict], device: torch.device, prefetch: bool | None = None):
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # the loading thread's current GPU may differ
            device = torch.device("cuda", torch.cuda.current_device())
        self.loader, self.device = loader, device
        self.prefetch = device.type == "cuda" if prefetch is None else prefetch
        self.replacer = BadVideoReplacer.for_loader(loader)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict]:
        if not self.prefetch:
            for batch in self.loader:
                yield to_device(batch, self.device, self.replacer)
            return
        yield from self._prefetched()

    def _prefetched(self) -> Iterator[dict]:
        cuda = self.device.type == "cuda"
        side = torch.cuda.Stream(self.device) if cuda else None
        batches = iter(self.loader)  # made here: the DataLoader's worker-death handler needs the main thread

        def load() -> tuple[dict, torch.cuda.Event | None]:
            batch = next(batches)
            with on_stream(self.device, side):
                out = to_device(batch, self.device, self.replacer)
                ready = torch.cuda.current_stream(self.device).record_event() if cuda else None
            return out, ready

        with Prefetcher(load, name="device-feed") as ahead:
            for batch, ready in ahead:
                if cuda:
                    current = torch.cuda.current_stream(self.device)
                    current.wait_event(ready)
                    for value in batch.values():
                        if isinstance(value, torch.Tensor) and value.device.type == "cuda":
                            value.record_stream(current)  # made on the side stream, used on this one
                yield batch
