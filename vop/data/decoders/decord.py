"""CPU decoding with decord: seeks to the keyframe before each requested frame, decodes to it."""
from __future__ import annotations

import os
import re
from pathlib import Path

import av
import decord
import numpy as np
import torch

from vop.data.decoders.base import Decoder, VideoDecodeError, check_indices, sample_indices
from vop.data.frames import resized_size
from vop.data.video_header import header_of, missing_video_stream, moving_picture_streams

# decord's C++ errors start with "[12:34:56] /some/file.cc:123: " (sometimes twice); strip that so
# the reason a user reads is the FFmpeg/decord message itself.
MIN_RESIZE_WIDTH = 96
_LOG_PREFIX = re.compile(r"^(\s*\[[0-9:]+\]\s*\S+:\d+:\s*)+")


def _reason(err: Exception) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    first = _LOG_PREFIX.sub("", lines[0]) if lines else type(err).__name__
    return first[:300]


class DecordDecoder(Decoder):
    """Decode with `decord.VideoReader` on the CPU.

    A new reader is opened per call: readers hold FFmpeg state that must not be shared by forked
    DataLoader workers. Opening demuxes (but does not decode) the whole file to index keyframes,
    which is cheap next to decoding.
    """

    def __init__(self, num_threads: int = 1, short_side: int | None = None) -> None:
        if num_threads < 0:
            raise ValueError(f"DecordDecoder: num_threads must be >= 0 (0 = FFmpeg's choice), got {num_threads}")
        if short_side is not None and short_side <= 0:
            raise ValueError(f"DecordDecoder: short_side must be positive or null, got {short_side}")
        # short_side: decord resizes while converting to RGB (its width/height arguments), so
        # workers never hold full-size frames; the size comes from the container header.
        self.short_side = short_side
        # One thread per worker by default: parallelism comes from DataLoader workers, and FFmpeg
        # threads on top of them oversubscribe the cores.
        self.num_threads = num_threads

    def _open(self, path: str | Path) -> decord.VideoReader:
        path = str(path)
        if not os.path.isfile(path):
            raise VideoDecodeError(path, "file not found")
        if os.path.getsize(path) == 0:
            raise VideoDecodeError(path, "file is empty (0 bytes)")
        size = self._target_size(path)
        try:
            return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=self.num_threads,
                                      width=size[1], height=size[0])
        except (decord.DECORDError, RuntimeError) as err:
            # Non-video files, missing moov atoms, truncated packets and audio-only files all fail here;
            # for the last, the header says so in plain words (decord: "cannot find video stream").
            raise VideoDecodeError(path, missing_video_stream(path) or f"decord could not open it ({_reason(err)}); "
                                   "is it a complete video file? FFmpeg's own message is on stderr") from err

    def _target_size(self, path: str) -> tuple[int, int]:
        """(height, width) to decode at; (-1, -1) keeps decord's full size."""
        if self.short_side is None:
            return -1, -1
        try:
            with av.open(path) as container:  # header only: no packet is read
                streams = moving_picture_streams(container)
                if not streams:
                    raise VideoDecodeError(path, header_of(container).no_video)
                height, width = streams[0].codec_context.height, streams[0].codec_context.width
        except av.FFmpegError as err:
            raise VideoDecodeError(path, f"could not read its video header ({err}); is it a complete video "
                                         "file?") from err
        if min(height, width) <= 0 or min(height, width) == self.short_side:
            return -1, -1
        size = resized_size(height, width, self.short_side)
        # decord 0.6 returns wrongly sized buffers for some small widths (16, 24, 48, 72 measured);
        # such tiny targets decode at full size and are resized by the workers instead.
        return size if size[1] >= MIN_RESIZE_WIDTH else (-1, -1)

    def num_frames(self, path: str | Path) -> int:
        return len(self._open(path))

    def decode(self, path: str | Path, indices: np.ndarray) -> torch.Tensor:
        return self._decode(path, self._open(path), indices)

    def read(self, path: str | Path, count: int, mode: str, rng: np.random.Generator | None = None) -> torch.Tensor:
        # One open for counting and decoding: opening demuxes the whole file.
        reader = self._open(path)
        return self._decode(path, reader, sample_indices(path, len(reader), count, mode, rng))

    def _decode(self, path: str | Path, reader: decord.VideoReader, indices: np.ndarray) -> torch.Tensor:
        indices = check_indices(path, indices, len(reader))  # [T]
        try:
            frames = reader.get_batch(indices.tolist()).asnumpy()  # [T, H, W, 3] uint8
        except (decord.DECORDError, RuntimeError) as err:
            # The container can promise more frames than the file holds (e.g. a cut-off download
            # whose index sits at the front): decord raises when it reaches the missing packets.
            raise VideoDecodeError(path, f"decord failed on frames {indices.min()}..{indices.max()} "
                                         f"of {len(reader)}: {_reason(err)}") from err
        if frames.ndim != 4 or frames.shape[0] != len(indices) or frames.shape[-1] != 3:
            raise VideoDecodeError(path, f"decord returned shape {frames.shape} for {len(indices)} frames")
        return torch.from_numpy(frames)
