"""`decoder=nvdec`: decode the sampled frames with the GPU's hardware decoder (PyNvVideoCodec).

Data workers are forked CPU processes and cannot use CUDA, so a worker only counts the video's
frames (decord demuxes the container; nothing is decoded) and draws the indices; it returns an
`NvdecFrames` item (path + indices). The main process decodes the batch's videos with NVDEC from a
thread pool (`threads`) inside `DeviceFeed`, resizes/crops on the GPU and hands the step a CUDA
uint8 [B, T, S, S, 3] batch, as the other decoders' batches would be after the copy.

Where NVDEC cannot run (no CUDA, no PyNvVideoCodec wheel, or no libnvcuvid from the NVIDIA
driver) the decoder says which of these is missing, once, and either decodes with decord on the
CPU (`fallback: decord`, the default) or raises (`fallback: error`).
"""
from __future__ import annotations

import ctypes
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vop.data.decoders.base import Decoder, VideoDecodeError, check_indices, sample_indices
from vop.data.decoders.decord import DecordDecoder
from vop.data.deferred import DeferredBatch, DeferredFrames
from vop.data.frames import fit_frames

log = logging.getLogger(__name__)
FALLBACKS = ("decord", "error")


class NvdecUnavailable(RuntimeError):
    """NVDEC decoding cannot run on this machine; the message says what is missing."""


def nvdec_missing() -> list[str]:
    """What stops NVDEC here (empty when it can run)."""
    missing = []
    if not torch.cuda.is_available():
        missing.append("CUDA (torch.cuda.is_available() is False: no GPU, or a CPU build of torch)")
    try:
        import PyNvVideoCodec  # noqa: F401
    except Exception as err:  # ImportError, or a wheel that fails to load its CUDA libraries
        missing.append(f"PyNvVideoCodec ({type(err).__name__}: {err}; `pip install PyNvVideoCodec`)")
    try:
        ctypes.CDLL("libnvcuvid.so.1")
    except OSError:
        missing.append("libnvcuvid.so.1 (the NVIDIA driver's video decode library; in containers run "
                       "with NVIDIA_DRIVER_CAPABILITIES=compute,utility,video)")
    return missing


def nvdec_decode(path: str, indices: np.ndarray, gpu_id: int) -> torch.Tensor:
    """Decode `indices` [T] of `path` on NVDEC -> CUDA uint8 [T, H, W, 3] RGB."""
    import PyNvVideoCodec as nvc

    try:
        reader = nvc.SimpleDecoder(path, gpu_id=gpu_id, use_device_memory=True,
                                   output_color_type=nvc.OutputColorType.RGB)
        unique, inverse = np.unique(indices, return_inverse=True)  # decode each frame once, in order
        frames = reader.get_batch_frames_by_index(unique.tolist())
    except Exception as err:  # PyNvVideoCodec raises plain RuntimeError/ValueError for bad files
        raise VideoDecodeError(path, f"NVDEC failed on frames {indices.min()}..{indices.max()}: {err}") from err
    # DLPack hands the decoder's device buffers to torch without a copy; clone() owns them before
    # the decoder is freed.
    decoded = torch.stack([torch.from_dlpack(f) for f in frames]).clone()  # [U, H, W, 3]
    return decoded[torch.from_numpy(inverse).to(decoded.device)]


class NvdecDecoder(Decoder):
    def __init__(self, gpu_id: int = 0, threads: int = 8, fallback: str = "decord"):
        if fallback not in FALLBACKS:
            raise ValueError(f"decoder.fallback={fallback!r}: expected one of {', '.join(FALLBACKS)}")
        self.gpu_id, self.threads = gpu_id, threads
        self.counter = DecordDecoder(num_threads=1)  # frame counts in the workers (demux only)
        missing = nvdec_missing()
        self.available = not missing
        if missing:
            message = "decoder=nvdec cannot run here; missing: " + "; ".join(missing)
            if fallback == "error":
                raise NvdecUnavailable(message + ". Use decoder=decord, or decoder.fallback=decord to fall back.")
            log.warning("%s. Falling back to decord on the CPU (decoder.fallback=decord).", message)

    def num_frames(self, path: str | Path) -> int:
        return self.counter.num_frames(path)

    def decode(self, path: str | Path, indices: np.ndarray) -> torch.Tensor:
        """uint8 [T, H, W, 3]: on the GPU with NVDEC, or on the CPU when falling back."""
        if not self.available:
            return self.counter.decode(path, indices)
        indices = check_indices(path, indices, self.num_frames(path))
        return nvdec_decode(str(path), indices, self.gpu_id)

    def read(self, path: str | Path, count: int, mode: str, rng: np.random.Generator | None = None):
        if not self.available:
            return self.counter.read(path, count, mode, rng)
        indices = sample_indices(path, self.num_frames(path), count, mode, rng)
        return NvdecFrames(str(path), indices, self.gpu_id, self.threads)


@dataclass
class NvdecFrames(DeferredFrames):
    path: str
    indices: np.ndarray   # [T]
    gpu_id: int
    threads: int
    size: int | None = None

    @classmethod
    def collate(cls, items: Sequence["NvdecFrames"]) -> "NvdecBatch":
        return NvdecBatch(list(items))


@dataclass
class NvdecBatch(DeferredBatch):
    items: list[NvdecFrames] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def materialize(self, device: torch.device) -> torch.Tensor:
        """NVDEC-decode every video (a thread per video, up to `threads`) -> uint8 [B, T, S, S, 3] on `device`."""
        def one(item: NvdecFrames) -> torch.Tensor:
            with torch.cuda.device(device):
                return nvdec_decode(item.path, item.indices, item.gpu_id)

        with ThreadPoolExecutor(self.items[0].threads) as pool:
            videos = list(pool.map(one, self.items))
        # The threads decoded on NVDEC's own streams; wait for them before this stream reads the frames.
        torch.cuda.synchronize(device)
        return torch.stack([fit_frames(v.to(device), item.size) for v, item in zip(videos, self.items)])
