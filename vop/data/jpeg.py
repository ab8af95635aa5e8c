"""JPEG frames: encoding for the frame cache, decoding on the CPU (PIL) or on the GPU (nvJPEG).

GPU decoding uses torchvision's `decode_jpeg(list, device="cuda")` (batched nvJPEG). torchvision is
an optional import used only there: the PyPI torchvision wheel does not import beside the CPU build
of torch this project is tested with ('operator torchvision::nms does not exist'), so nothing on
the CPU path needs it. Install a torchvision matching your CUDA torch to decode on the GPU.
"""
from __future__ import annotations

import ctypes
import functools
import io
import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from PIL import Image

try:  # optional, faster CPU decode (pyproject.toml's `decoders` extra); PIL is the fallback
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None

from vop.data.decode_error import VideoDecodeError
from vop.data.deferred import DeferredBatch, DeferredFrames
from vop.data.frames import fit_frames

log = logging.getLogger(__name__)
NVJPEG_BACKEND_HARDWARE = 3        # nvjpegBackend_t (nvjpeg.h)
NVJPEG_STATUS_ARCH_MISMATCH = 7    # nvjpegStatus_t: the GPU lacks what the backend needs


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """uint8 [H, W, 3] RGB -> JPEG bytes (4:2:0 chroma, like most video and nvJPEG's fast path)."""
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _decode_one(jpeg: bytes) -> np.ndarray:
    if simplejpeg is not None:
        return simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def decode_jpegs_cpu(jpegs: Sequence[bytes]) -> torch.Tensor:
    """JPEG bytes of one video's frames (same size) -> uint8 [T, H, W, 3] on the CPU.

    simplejpeg when installed (measured 1.8x PIL's rate on 320x240 frames here), else PIL; both
    wrap libjpeg-turbo and give the same pixels up to its IDCT choice.
    """
    return torch.from_numpy(np.stack([_decode_one(j) for j in jpegs]))


@dataclass(frozen=True)
class NvjpegProbe:
    """What one real decode found out about nvJPEG on this machine's current GPU."""

    works: bool     # torchvision decoded a list of JPEGs on the GPU, matching the CPU decode
    hardware: bool  # nvJPEG's hardware backend exists: a list decodes as one batch (A100/H100 class)
    detail: str     # why not, or what was found


def _probe_jpegs() -> tuple[list[torch.Tensor], torch.Tensor]:
    """Two small baseline JPEGs (as torchvision wants them) and their CPU decode [2, H, W, 3]."""
    gen = np.random.default_rng(0)
    frames = [np.kron(gen.integers(0, 256, (4, 6, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
              for _ in range(2)]  # [32, 48, 3] blocks: smooth enough for JPEG to keep them close
    jpegs = [encode_jpeg(f, 95) for f in frames]
    blobs = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs]
    return blobs, decode_jpegs_cpu(jpegs)


def nvjpeg_hardware_backend() -> tuple[bool, str]:
    """(available, detail): ask the nvJPEG library torchvision loaded for its hardware backend.

    torchvision itself asks the same (`nvjpegCreateEx(NVJPEG_BACKEND_HARDWARE)`, falling back to
    the default backend on NVJPEG_STATUS_ARCH_MISMATCH) and decodes a list as one batch only when
    it got it; otherwise each image is decoded and synchronised on its own.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libnvjpeg" in line}
    except OSError as err:
        return False, f"cannot read /proc/self/maps ({err})"
    if not paths:
        return False, "no libnvjpeg is loaded in this process"
    lib = ctypes.CDLL(sorted(paths)[0])
    handle = ctypes.c_void_p()
    status = lib.nvjpegCreateEx(NVJPEG_BACKEND_HARDWARE, None, None, 0, ctypes.byref(handle))
    if status == 0:
        lib.nvjpegDestroy(handle)
        return True, "hardware backend present"
    why = "this GPU has no JPEG decode engine" if status == NVJPEG_STATUS_ARCH_MISMATCH else f"status {status}"
    return False, f"no hardware backend ({why})"


@functools.lru_cache(maxsize=None)
def probe_nvjpeg(device_index: int) -> NvjpegProbe:
    """Decode two JPEGs as a list on GPU `device_index` and check the hardware backend (once per process)."""
    device = torch.device("cuda", device_index)
    try:
        blobs, expected = _probe_jpegs()
        decoded = decode_jpegs_gpu(blobs, device)  # torchvision: an import or API error lands here too
        got = torch.stack([im.permute(1, 2, 0) for im in decoded]).cpu()
    except Exception as err:  # ImportError, a torchvision without nvJPEG or without the list API, a CUDA error
        return NvjpegProbe(False, False, f"torchvision's decode_jpeg(list, device='cuda') failed "
                                         f"({type(err).__name__}: {str(err)[:200]})")
    error = (got.int() - expected.int()).abs().float().mean().item()
    if got.shape != expected.shape or error > 2.0:
        return NvjpegProbe(False, False, f"nvJPEG decoded the probe images wrongly (shape {tuple(got.shape)}, "
                                         f"mean error {error:.1f} grey levels)")
    hardware, detail = nvjpeg_hardware_backend()
    return NvjpegProbe(True, hardware, detail)


def decode_jpegs_gpu(jpegs: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """uint8 1-d CPU tensors of JPEG bytes -> list of uint8 [3, H, W] on `device` (one nvJPEG batch).

    torchvision decodes on its own stream, then makes the caller's current stream wait for it, so
    the results are ready for whatever the caller queues next on its stream.
    """
    from torchvision.io import ImageReadMode, decode_jpeg  # optional: see the module docstring

    return decode_jpeg(list(jpegs), mode=ImageReadMode.RGB, device=device)


@dataclass
class JpegFrames(DeferredFrames):
    """One video's frames as JPEG bytes, decoded later by `JpegBatch.materialize`."""

    jpegs: list[bytes]
    size: int | None = None
    path: str = ""  # the video the frames come from: named when they fail to decode

    @classmethod
    def collate(cls, items: Sequence["JpegFrames"]) -> "JpegBatch":
        counts = {len(it.jpegs) for it in items}
        sizes = {it.size for it in items}
        if len(counts) != 1 or len(sizes) != 1 or None in sizes:
            raise ValueError(f"JpegFrames.collate: videos need equal frame counts and a fitted size, got "
                             f"counts {sorted(counts)} sizes {sorted(sizes, key=str)}")
        blobs = [j for it in items for j in it.jpegs]
        lengths = torch.tensor([len(b) for b in blobs])
        # One flat uint8 tensor crosses the worker queue through shared memory, not as pickled bytes.
        data = torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        return JpegBatch(data, offsets, len(items), counts.pop(), sizes.pop(), [it.path for it in items])


@dataclass
class JpegBatch(DeferredBatch):
    data: torch.Tensor      # uint8 [total bytes]: every frame's JPEG back to back
    offsets: torch.Tensor   # int64 [B*T + 1]
    batch: int
    frames: int
    size: int
    paths: list[str] = field(default_factory=list)  # [B]

    def __len__(self) -> int:
        return self.batch

    def blobs(self) -> list[torch.Tensor]:
        o = self.offsets.tolist()
        return [self.data[o[i]:o[i + 1]] for i in range(len(o) - 1)]

    def decode_videos(self, device: torch.device) -> list[torch.Tensor | VideoDecodeError]:
        """Each video -> uint8 [T, size, size, 3] on `device` (nvJPEG on CUDA, the CPU decoder elsewhere),
        or the VideoDecodeError naming a video whose JPEGs do not decode."""
        try:
            return self._fit(self._decode(self.blobs(), device))
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, ValueError, OSError) as err:  # a corrupt JPEG fails nvJPEG's whole batch
            if self.batch == 1:
                return [self._error(err, device)]
        return [self._slice(i).decode_videos(device)[0] for i in range(self.batch)]  # find which video

    def _decode(self, blobs: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        if device.type == "cuda":
            return [im.permute(1, 2, 0) for im in decode_jpegs_gpu(blobs, device)]  # [H, W, 3] each
        return [decode_jpegs_cpu([b.numpy().tobytes()])[0] for b in blobs]

    def _fit(self, decoded: list[torch.Tensor]) -> list[torch.Tensor]:
        videos = [torch.stack(decoded[i * self.frames:(i + 1) * self.frames]) for i in range(self.batch)]
        return [fit_frames(v, self.size) for v in videos]  # [T, S, S, 3] each

    def _slice(self, i: int) -> "JpegBatch":
        """Video `i` alone, as a batch of one."""
        lo, hi = self.offsets[i * self.frames].item(), self.offsets[(i + 1) * self.frames].item()
        offsets = self.offsets[i * self.frames:(i + 1) * self.frames + 1] - lo
        path = self.paths[i] if self.paths else ""
        return JpegBatch(self.data[lo:hi], offsets, 1, self.frames, self.size, [path])

    def _error(self, err: Exception, device: torch.device) -> VideoDecodeError:
        where = "nvJPEG" if device.type == "cuda" else "the CPU JPEG decoder"
        return VideoDecodeError(self.paths[0] if self.paths else "<frame cache>",
                                f"{where} could not decode its cached frames ({type(err).__name__}: "
                                f"{str(err)[:200]}); rebuild them with scripts/build_frame_cache.py")
