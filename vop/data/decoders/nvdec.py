"""`decoder=nvdec`: decode the sampled frames with the GPU's hardware decoder (PyNvVideoCodec).

Data workers are forked CPU processes and cannot use CUDA, so a worker only counts the video's
frames (decord demuxes the container; nothing is decoded) and draws the indices; it returns an
`NvdecFrames` item (path + indices). The main process decodes the batch's videos with NVDEC inside
`DeviceFeed` (a background thread, one batch ahead of the step) on `threads` long-lived decode
threads. Each thread keeps one PyNvVideoCodec decoder (re-pointed at the next file rather than
rebuilt) and one CUDA stream: decoding, the DLPack hand-over, stacking and the resize/crop all run
on that stream, and the caller's stream waits for it and is recorded on the results, so the
caching allocator never hands their memory to another stream early. The device is the one the
batch is materialised on: under torchrun each rank's `cuda:LOCAL_RANK`.

A video NVDEC cannot decode, or of which it returns fewer frames than asked (PyNvVideoCodec drops
indices past its own frame count with a warning), comes back as a `VideoDecodeError` naming it,
and training replaces it like any bad video (vop/data/bad_videos.py).

Where NVDEC cannot run (no CUDA, no PyNvVideoCodec wheel, or no libnvcuvid from the NVIDIA
driver) the decoder says which of these is missing, once, and either decodes with decord on the
CPU (`fallback: decord`, the default) or raises (`fallback: error`).
"""
from __future__ import annotations

import ctypes
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vop.data.decoders.base import Decoder, VideoDecodeError, check_indices, sample_indices
from vop.data.decoders.decord import DecordDecoder
from vop.data.deferred import DeferredBatch, DeferredFrames
from vop.data.frames import fit_frames
from vop.errors import ConfigError

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


def _nvc():
    import PyNvVideoCodec as nvc  # optional: only where NVDEC runs

    return nvc


def gpu_index(device: torch.device) -> int:
    """The GPU a batch for `device` decodes on: its index (cuda:LOCAL_RANK under torchrun), else the current one."""
    if device.type != "cuda":
        raise ValueError(f"NVDEC decodes on a CUDA device, not {device}")
    return device.index if device.index is not None else torch.cuda.current_device()


class _Slot:
    """One decode thread's PyNvVideoCodec decoder and CUDA stream, kept across videos and batches."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.reader, self.path = None, None

    def open(self, path: str):
        nvc = _nvc()
        if self.reader is not None and self.path != path:
            try:  # re-point the decoder: building one (parser, surfaces) costs more than a small video's decode
                self.reader.reconfigure_decoder(path)
                self.path = path
            except Exception:  # a codec/size the old decoder cannot take, or an unreadable file: build anew
                self.reader = None
        if self.reader is None:
            self.path = None
            self.reader = nvc.SimpleDecoder(path, gpu_id=gpu_index(self.device), use_device_memory=True,
                                            output_color_type=nvc.OutputColorType.RGB,
                                            cuda_stream=self.stream.cuda_stream if self.stream is not None else 0)
            self.path = path
        return self.reader

    def decode(self, path: str, indices: np.ndarray) -> torch.Tensor:
        """Frames `indices` [T] of `path` -> uint8 [T, H, W, 3] on this slot's stream."""
        unique, inverse = np.unique(indices, return_inverse=True)  # decode each frame once, in order
        try:
            frames = self.open(path).get_batch_frames_by_index(unique.tolist())
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # PyNvVideoCodec raises plain RuntimeError/ValueError for bad files
            self.reader = self.path = None  # its state is unknown now
            raise VideoDecodeError(path, f"NVDEC failed on frames {unique.min()}..{unique.max()}: {err}") from err
        if len(frames) != len(unique):  # it drops indices past its own frame count instead of raising
            raise VideoDecodeError(path, f"NVDEC returned {len(frames)} of the {len(unique)} frames asked for "
                                         f"(up to index {unique.max()}): the container promises more frames "
                                         "than its stream holds")
        # DLPack views of the decoder's surfaces, consumed on this stream (the decoder's own) before
        # its next decode reuses them; stack() copies them into memory torch owns.
        decoded = torch.stack([_hwc(torch.from_dlpack(f)) for f in frames])  # [U, H, W, 3]
        return decoded[torch.from_numpy(inverse).to(decoded.device)]  # [T, H, W, 3]


def _hwc(frame: torch.Tensor) -> torch.Tensor:
    """A decoded RGB frame -> [H, W, 3] (interleaved RGB; planar [3, H, W] is transposed)."""
    if frame.ndim == 3 and frame.shape[-1] != 3 and frame.shape[0] == 3:
        frame = frame.permute(1, 2, 0)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != torch.uint8:
        raise ValueError(f"NVDEC returned a frame of {frame.dtype} {tuple(frame.shape)}, expected uint8 [H, W, 3]")
    return frame


class NvdecThreads:
    """`threads` long-lived decode threads for one device, each with its own `_Slot`."""

    def __init__(self, device: torch.device, threads: int):
        self.device = device
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=f"nvdec{gpu_index(device)}")
        self.local = threading.local()

    def _slot(self) -> _Slot:
        if not hasattr(self.local, "slot"):
            self.local.slot = _Slot(self.device)
        return self.local.slot

    def _one(self, item: "NvdecFrames") -> tuple[torch.Tensor, torch.cuda.Stream | None] | VideoDecodeError:
        slot = self._slot()
        with ExitStack() as ctx:
            if slot.stream is not None:
                ctx.enter_context(torch.cuda.device(self.device))
                ctx.enter_context(torch.cuda.stream(slot.stream))  # the current stream is per thread
            try:
                video = slot.decode(item.path, item.indices)
            except VideoDecodeError as err:
                return err
            return fit_frames(video, item.size) if item.size else video, slot.stream  # [T, S, S, 3]

    def decode(self, items: Sequence["NvdecFrames"]) -> list[torch.Tensor | VideoDecodeError]:
        """Each item -> uint8 [T, S, S, 3] ready for the CALLER's current stream, or its VideoDecodeError."""
        results = list(self.pool.map(self._one, items))
        if self.device.type != "cuda":
            return [r if isinstance(r, VideoDecodeError) else r[0] for r in results]
        current = torch.cuda.current_stream(self.device)
        for stream in {r[1] for r in results if not isinstance(r, VideoDecodeError)}:
            current.wait_stream(stream)  # the decode threads' work comes first on this stream
        videos = []
        for r in results:
            if not isinstance(r, VideoDecodeError):
                r[0].record_stream(current)  # made on a decode stream, used on this one: no early reuse
                r = r[0]
            videos.append(r)
        return videos


_THREADS: dict[tuple[str, int, int], NvdecThreads] = {}
_THREADS_LOCK = threading.Lock()


def nvdec_threads(device: torch.device, threads: int) -> NvdecThreads:
    """The process's decode threads for `device` (built once, so decoders and streams are reused)."""
    key = (device.type, gpu_index(device), threads)
    with _THREADS_LOCK:
        if key not in _THREADS:
            _THREADS[key] = NvdecThreads(device, threads)
        return _THREADS[key]


class NvdecDecoder(Decoder):
    def __init__(self, threads: int = 8, fallback: str = "decord"):
        if fallback not in FALLBACKS:
            raise ConfigError(f"decoder.fallback={fallback!r}: expected one of {', '.join(FALLBACKS)}")
        if threads < 1:
            raise ConfigError(f"decoder.threads must be >= 1, got {threads}")
        self.threads = threads
        self.counter = DecordDecoder(num_threads=1)  # frame counts in the workers (demux only)
        missing = nvdec_missing()
        self.available = not missing
        if missing:
            message = "decoder=nvdec cannot run here; missing: " + "; ".join(missing)
            if fallback == "error":
                raise NvdecUnavailable(message + ". Use decoder=decord, or decoder.fallback=decord to fall back.")
            log.warning("%s. Falling back to decord on the CPU (decoder.fallback=decord).", message)

    @property
    def deferred(self) -> bool:
        return self.available

    def num_frames(self, path: str | Path) -> int:
        return self.counter.num_frames(path)

    def decode(self, path: str | Path, indices: np.ndarray) -> torch.Tensor:
        """uint8 [T, H, W, 3]: on the current GPU with NVDEC, or on the CPU when falling back."""
        if not self.available:
            return self.counter.decode(path, indices)
        indices = check_indices(path, indices, self.num_frames(path))
        device = torch.device("cuda", torch.cuda.current_device())
        frames = NvdecBatch([NvdecFrames(str(path), indices, self.threads)]).decode_videos(device)[0]
        if isinstance(frames, VideoDecodeError):
            raise frames
        return frames

    def read(self, path: str | Path, count: int, mode: str, rng: np.random.Generator | None = None):
        if not self.available:
            return self.counter.read(path, count, mode, rng)
        indices = sample_indices(path, self.num_frames(path), count, mode, rng)
        return NvdecFrames(str(path), indices, self.threads)


@dataclass
class NvdecFrames(DeferredFrames):
    path: str
    indices: np.ndarray   # [T]
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

    def decode_videos(self, device: torch.device) -> list[torch.Tensor | VideoDecodeError]:
        """NVDEC-decode every video on `device` (up to `threads` at once) -> uint8 [T, S, S, 3] each, or
        the VideoDecodeError naming it. The caller's current stream may use the results at once."""
        return nvdec_threads(device, self.items[0].threads).decode(self.items)
