"""CPU decoding with PyAV (FFmpeg's libraries): index the packets once, seek to the keyframe before
each wanted frame, decode forward to it, and convert (optionally resized) with swscale.
"""
from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import torch

from vop.data.decoders.base import Decoder, VideoDecodeError, check_indices, sample_indices
from vop.data.frames import resized_size
from vop.data.video_header import header_of, moving_picture_streams


def check_file(path: str | Path) -> str:
    """The path as a string if it names a non-empty file, else VideoDecodeError saying which."""
    path = str(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    return path


def video_stream(container: av.container.InputContainer) -> av.VideoStream:
    """The stream frames come from: the first video stream that is not cover art (an attached picture)."""
    return moving_picture_streams(container)[0]


class PyAVDecoder(Decoder):
    """Decode with PyAV. `short_side`: swscale resizes each frame so its short side is this many
    pixels while converting to RGB (one pass, and workers never hold full-size frames).

    Frame i is the packet with the i-th smallest presentation time, the same numbering decord uses.
    """

    def __init__(self, num_threads: int = 1, short_side: int | None = None, interpolation: str = "BICUBIC") -> None:
        if num_threads < 0:
            raise ValueError(f"PyAVDecoder: num_threads must be >= 0 (0 = FFmpeg's choice), got {num_threads}")
        if short_side is not None and short_side <= 0:
            raise ValueError(f"PyAVDecoder: short_side must be positive or null, got {short_side}")
        self.num_threads, self.short_side, self.interpolation = num_threads, short_side, interpolation

    def num_frames(self, path: str | Path) -> int:
        with self._open(path) as container:
            return len(self._index(path, container)[0])

    def decode(self, path: str | Path, indices: np.ndarray) -> torch.Tensor:
        with self._open(path) as container:
            pts, keys = self._index(path, container)
            return self._decode(path, container, pts, keys, check_indices(path, indices, len(pts)))

    def read(self, path: str | Path, count: int, mode: str, rng: np.random.Generator | None = None) -> torch.Tensor:
        with self._open(path) as container:  # one open for counting and decoding
            pts, keys = self._index(path, container)
            return self._decode(path, container, pts, keys, sample_indices(path, len(pts), count, mode, rng))

    def _open(self, path: str | Path) -> av.container.InputContainer:
        path = check_file(path)
        try:
            container = av.open(path)
        except av.FFmpegError as err:
            raise VideoDecodeError(path, f"PyAV could not open it ({err}); is it a complete video file?") from err
        streams = moving_picture_streams(container)
        if not streams:  # audio only, or audio and its cover art
            reason = header_of(container).no_video
            container.close()
            raise VideoDecodeError(path, reason)
        streams[0].thread_count = self.num_threads
        return container

    def _index(self, path: str, container: av.container.InputContainer) -> tuple[np.ndarray, np.ndarray]:
        """Presentation times of every frame, sorted [N], and those of the keyframes [K] (demux only)."""
        stream = video_stream(container)
        pts, keys = [], []
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue  # the demuxer's flush packet
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.FFmpegError as err:
            raise VideoDecodeError(path, f"PyAV failed while reading packets ({err}); the file may be truncated") from err
        return np.sort(np.asarray(pts, dtype=np.int64)), np.sort(np.asarray(keys, dtype=np.int64))

    def _decode(self, path: str, container: av.container.InputContainer, pts: np.ndarray, keys: np.ndarray,
                indices: np.ndarray) -> torch.Tensor:
        stream = video_stream(container)
        size = None
        got: dict[int, np.ndarray] = {}
        frames, last = None, None  # the running decoder and the pts it last returned
        try:
            for index in np.unique(indices):  # ascending: one forward pass between seeks
                target = int(pts[index])
                before = keys[keys <= target]
                key = int(before[-1]) if before.size else int(pts[0])
                if frames is None or last is None or key > last:
                    # Seek only when the target's keyframe lies ahead of where decoding stands.
                    container.seek(key, stream=stream, backward=True, any_frame=False)
                    frames, last = container.decode(stream), None
                frame = self._advance(path, frames, target)
                last = frame.pts
                size = size or self._size(frame.height, frame.width)
                got[int(index)] = frame.to_ndarray(format="rgb24", width=size[1], height=size[0],
                                                   interpolation=self.interpolation)  # [H, W, 3]
        except av.FFmpegError as err:
            raise VideoDecodeError(path, f"PyAV failed on frames {indices.min()}..{indices.max()} of "
                                         f"{len(pts)}: {err}") from err
        return torch.from_numpy(np.stack([got[int(i)] for i in indices]))  # [T, H, W, 3]

    @staticmethod
    def _advance(path: str, frames, target: int) -> av.VideoFrame:
        for frame in frames:
            if frame.pts is not None and frame.pts >= target:
                return frame
        raise VideoDecodeError(path, f"the stream ended before the frame at pts {target}; the file may be truncated")

    def _size(self, height: int, width: int) -> tuple[int, int]:
        return (height, width) if self.short_side is None else resized_size(height, width, self.short_side)
