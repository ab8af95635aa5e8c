"""Decoding with TorchCodec (PyTorch's FFmpeg bindings), on the CPU or, where the installed build
has CUDA support, on the GPU's NVDEC. Frames are resized inside FFmpeg's filter graph when
`short_side` is set, so full-size frames never reach Python.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vop.data.decoders.base import Decoder, VideoDecodeError, check_indices, sample_indices
from vop.data.decoders.pyav import check_file
from vop.data.frames import resized_size
from vop.data.video_header import missing_video_stream
from vop.errors import ConfigError


def _decoder_class():
    # Imported lazily: torchcodec needs FFmpeg's shared libraries at import time, and the other
    # decoders must keep working on machines that lack them.
    try:
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize
    except (ImportError, RuntimeError) as err:
        raise RuntimeError("decoder=torchcodec needs `pip install torchcodec` and FFmpeg's shared libraries "
                           f"(e.g. `apt-get install ffmpeg`): {str(err).splitlines()[0]}") from err
    return VideoDecoder, Resize


class TorchCodecDecoder(Decoder):
    """`torchcodec.decoders.VideoDecoder` in exact seek mode (frame i = the i-th frame in time).

    `device="cuda"` decodes on NVDEC and returns CUDA tensors; it needs a CUDA build of torchcodec
    and, since CUDA does not survive fork, `data.num_workers=0`.
    """

    def __init__(self, num_threads: int = 1, device: str = "cpu", short_side: int | None = None) -> None:
        if num_threads < 0:
            raise ValueError(f"TorchCodecDecoder: num_threads must be >= 0 (0 = FFmpeg's choice), got {num_threads}")
        if short_side is not None and short_side <= 0:
            raise ValueError(f"TorchCodecDecoder: short_side must be positive or null, got {short_side}")
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"decoder.device={device} but CUDA is not available; use decoder.device=cpu")
        _decoder_class()  # fail at construction, in the main process, if torchcodec cannot load
        self.num_threads, self.device, self.short_side = num_threads, device, short_side

    def _open(self, path: str | Path):
        path = check_file(path)
        VideoDecoder, Resize = _decoder_class()
        try:
            transforms = None
            if self.short_side is not None:
                # The header alone (approximate mode does not scan the file) gives the size to aim for.
                meta = VideoDecoder(path, seek_mode="approximate").metadata
                if min(meta.height, meta.width) != self.short_side:
                    transforms = [Resize(size=list(resized_size(meta.height, meta.width, self.short_side)))]
            return VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=self.num_threads,
                                device=self.device, seek_mode="exact", transforms=transforms)
        except (RuntimeError, ValueError) as err:
            # An audio-only file fails here too ("The best video stream is unknown"): its header says so plainly.
            raise VideoDecodeError(path, missing_video_stream(path) or f"torchcodec could not open it "
                                   f"({_first_line(err)}); is it a complete video file?") from err

    def num_frames(self, path: str | Path) -> int:
        return self._count(path, self._open(path))

    def decode(self, path: str | Path, indices: np.ndarray) -> torch.Tensor:
        decoder = self._open(path)
        return self._decode(path, decoder, check_indices(path, indices, self._count(path, decoder)))

    def read(self, path: str | Path, count: int, mode: str, rng: np.random.Generator | None = None) -> torch.Tensor:
        decoder = self._open(path)  # one open (the exact-mode scan) for counting and decoding
        return self._decode(path, decoder, sample_indices(path, self._count(path, decoder), count, mode, rng))

    @staticmethod
    def _count(path: str | Path, decoder) -> int:
        count = decoder.metadata.num_frames
        if count is None:
            raise VideoDecodeError(path, missing_video_stream(path) or "torchcodec found no frame count in it")
        if count <= 1 and (reason := missing_video_stream(path)):  # cover art of an audio file: one still
            raise VideoDecodeError(path, reason)
        return int(count)

    @staticmethod
    def _decode(path: str | Path, decoder, indices: np.ndarray) -> torch.Tensor:
        try:
            frames = decoder.get_frames_at(indices=indices.tolist()).data  # [T, H, W, 3] uint8
        except (RuntimeError, IndexError, ValueError) as err:
            raise VideoDecodeError(path, f"torchcodec failed on frames {indices.min()}..{indices.max()}: "
                                         f"{_first_line(err)}") from err
        return frames.contiguous()


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:300]
