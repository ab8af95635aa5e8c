"""JPEG frames: encoding for the frame cache, decoding on the CPU (PIL) or on the GPU (nvJPEG).

GPU decoding uses torchvision's `decode_jpeg(list, device="cuda")` (batched nvJPEG). torchvision is
an optional import used only there: the PyPI torchvision wheel does not import beside the CPU build
of torch this project is tested with ('operator torchvision::nms does not exist'), so nothing on
the CPU path needs it. Install a torchvision matching your CUDA torch to decode on the GPU.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

try:  # optional, faster CPU decode (requirements.txt); PIL is the fallback
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None

from vop.data.deferred import DeferredBatch, DeferredFrames
from vop.data.frames import fit_frames

log = logging.getLogger(__name__)


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


def gpu_jpeg_unavailable() -> str | None:
    """Why batched nvJPEG decoding cannot run here, or None when it can."""
    if not torch.cuda.is_available():
        return "CUDA is not available"
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except Exception as err:  # ImportError, or torchvision built for another torch (RuntimeError)
        return f"torchvision does not import ({type(err).__name__}: {err}); install the torchvision matching torch"
    return None


def decode_jpegs_gpu(jpegs: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """uint8 1-d CPU tensors of JPEG bytes -> list of uint8 [3, H, W] on `device` (one nvJPEG batch)."""
    from torchvision.io import ImageReadMode, decode_jpeg  # optional: see the module docstring

    return decode_jpeg(list(jpegs), mode=ImageReadMode.RGB, device=device)


@dataclass
class JpegFrames(DeferredFrames):
    """One video's frames as JPEG bytes, decoded later by `JpegBatch.materialize`."""

    jpegs: list[bytes]
    size: int | None = None

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
        return JpegBatch(data, offsets, len(items), counts.pop(), sizes.pop())


@dataclass
class JpegBatch(DeferredBatch):
    data: torch.Tensor      # uint8 [total bytes]: every frame's JPEG back to back
    offsets: torch.Tensor   # int64 [B*T + 1]
    batch: int
    frames: int
    size: int

    def __len__(self) -> int:
        return self.batch

    def blobs(self) -> list[torch.Tensor]:
        o = self.offsets.tolist()
        return [self.data[o[i]:o[i + 1]] for i in range(len(o) - 1)]

    def materialize(self, device: torch.device) -> torch.Tensor:
        """-> uint8 [B, T, size, size, 3] on `device`: nvJPEG on CUDA, PIL on the CPU."""
        blobs = self.blobs()
        if device.type == "cuda":
            decoded = [im.permute(1, 2, 0) for im in decode_jpegs_gpu(blobs, device)]  # [H, W, 3] each
        else:
            decoded = [decode_jpegs_cpu([b.numpy().tobytes()])[0] for b in blobs]
        videos = [torch.stack(decoded[i * self.frames:(i + 1) * self.frames]) for i in range(self.batch)]
        return torch.stack([fit_frames(v, self.size) for v in videos])  # [B, T, S, S, 3]
