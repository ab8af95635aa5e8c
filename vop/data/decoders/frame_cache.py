"""`decoder=frames`: read sampled frames from the frame cache (vop/data/frame_store.py).

Sampling runs over the ORIGINAL video's frame count (kept in the cache), and each sampled index is
served by the nearest stored frame, so `rand` and `uniform` keep their meaning; see the cache's
docstring for when the `uniform` sample is exact. On the CPU the worker decodes the JPEGs; with
`gpu_decode` on, the worker only reads the bytes and the main process decodes the whole batch with
nvJPEG (vop/data/jpeg.py, vop/engine/device_feed.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from vop.data.decoders.base import Decoder, VideoDecodeError, check_indices, sample_indices
from vop.data.frame_store import FrameCache, nearest_stored
from vop.data.jpeg import JpegFrames, decode_jpegs_cpu, probe_nvjpeg
from vop.errors import ConfigError

log = logging.getLogger(__name__)
GPU_DECODE = ("auto", "on", "off")


def resolve_gpu_decode(mode: str | bool) -> bool:
    """auto: nvJPEG only where a probe decode works AND its batched hardware path exists (else the
    CPU workers, logged at WARNING when a GPU is there); on: nvJPEG wherever it works; off: CPU."""
    mode = {True: "on", False: "off"}.get(mode, mode)
    if mode not in GPU_DECODE:
        raise ConfigError(f"decoder.gpu_decode={mode!r}: expected one of {', '.join(GPU_DECODE)}")
    if mode == "off":
        return False
    if not torch.cuda.is_available():
        if mode == "on":
            raise ConfigError("decoder.gpu_decode=on but GPU JPEG decoding is unavailable: CUDA is not available. "
                              "Use decoder.gpu_decode=off (CPU decode in the data workers)")
        log.info("frame cache: JPEGs decode on the CPU in the data workers (CUDA is not available)")
        return False
    probe = probe_nvjpeg(torch.cuda.current_device())
    if not probe.works:
        if mode == "on":
            raise ConfigError(f"decoder.gpu_decode=on but GPU JPEG decoding is unavailable: {probe.detail}. "
                              "Use decoder.gpu_decode=off (CPU decode in the data workers)")
        log.warning("frame cache: decoder.gpu_decode=auto falls back to CPU decoding in the data workers: %s",
                    probe.detail)
        return False
    if probe.hardware:
        log.info("frame cache: JPEGs decode batched on the GPU (nvJPEG, %s)", probe.detail)
        return True
    if mode == "on":
        log.warning("frame cache: decoder.gpu_decode=on, but nvJPEG has %s: it decodes image by image", probe.detail)
        return True
    log.warning("frame cache: decoder.gpu_decode=auto falls back to CPU decoding in the data workers: nvJPEG has "
                "%s, so it would decode image by image with a sync each (decoder.gpu_decode=on forces it)",
                probe.detail)
    return False


class FrameCacheDecoder(Decoder):
    def __init__(self, cache_dir: str | Path, video_root: str | Path, gpu_decode: str | bool = "auto"):
        self.cache_dir, self.video_root = Path(cache_dir), Path(video_root)
        self.gpu_decode = resolve_gpu_decode(gpu_decode)
        self._cache: FrameCache | None = None

    @property
    def deferred(self) -> bool:
        return self.gpu_decode

    @property
    def cache(self) -> FrameCache:
        # Loaded on first use (a few MB of index for MSR-VTT); workers forked later share it.
        if self._cache is None:
            self._cache = FrameCache(self.cache_dir)
        return self._cache

    def key(self, path: str | Path) -> str:
        try:
            key = Path(path).relative_to(self.video_root).as_posix()
        except ValueError:
            raise VideoDecodeError(path, f"it is not under decoder.video_root={self.video_root}, "
                                         "so it has no frame-cache key") from None
        if key not in self.cache:
            if key in self.cache.failed:  # the build could not read it: its reason, not "build the cache"
                raise VideoDecodeError(path, f"{self.cache.failed[key]} (so scripts/build_frame_cache.py left it out "
                                             f"of the frame cache {self.cache_dir})")
            raise VideoDecodeError(path, f"it is not in the frame cache {self.cache_dir} ({len(self.cache)} videos "
                                         "cached); build or complete it with scripts/build_frame_cache.py")
        return key

    def num_frames(self, path: str | Path) -> int:
        return self.cache.entries[self.key(path)].num_frames

    def _jpegs(self, path: str | Path, indices: np.ndarray) -> list[bytes]:
        key = self.key(path)
        entry = self.cache.entries[key]
        indices = check_indices(path, indices, entry.num_frames)  # [T] original indices
        return self.cache.jpegs(key, nearest_stored(entry.frames, indices))

    def decode(self, path: str | Path, indices: np.ndarray) -> torch.Tensor:
        """The stored frames nearest to `indices` -> uint8 [T, H, W, 3] (CPU decode)."""
        return decode_jpegs_cpu(self._jpegs(path, indices))

    def read(self, path: str | Path, count: int, mode: str, rng: np.random.Generator | None = None):
        indices = sample_indices(path, self.num_frames(path), count, mode, rng)  # [count]
        if self.gpu_decode:
            return JpegFrames(self._jpegs(path, indices), path=str(path))  # decoded batched on the GPU later
        return self.decode(path, indices)
