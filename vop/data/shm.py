"""Shared memory for the data workers: warn before a run whose batches cannot fit in /dev/shm.

Workers hand their uint8 batches to the main process through shared memory (/dev/shm); each keeps
up to `prefetch_factor` batches there. Docker gives a container 64 MiB of /dev/shm by default, far
less than 8 workers x 2 batches of 32 x 12 x 224 x 224 x 3 bytes, and the workers then die with
"bus error ... insufficient shared memory" and no hint why. This says so, with the numbers, first.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
MIB = 2**20


def batch_bytes(batch_size: int, num_frames: int, frame_size: int) -> int:
    """One uint8 batch [B, T, S, S, 3]."""
    return batch_size * num_frames * frame_size * frame_size * 3


def shm_need(batch_size: int, num_frames: int, frame_size: int, num_workers: int,
             prefetch_factor: int = 2) -> tuple[int, int]:
    """(bytes per worker, bytes for all workers) of shared memory the loader's batches take."""
    per_worker = batch_bytes(batch_size, num_frames, frame_size) * prefetch_factor
    return per_worker, per_worker * num_workers


def check_shm(batch_size: int, num_frames: int, frame_size: int, num_workers: int, prefetch_factor: int = 2,
              path: str = "/dev/shm") -> str | None:
    """Log (WARNING) and return the message when `path` is smaller than the workers need; else None."""
    if num_workers <= 0:
        return None  # no workers: batches never leave the main process
    try:
        stats = os.statvfs(path)
    except OSError:
        return None  # no /dev/shm to measure (not Linux): nothing to say
    size = stats.f_blocks * stats.f_frsize
    per_worker, need = shm_need(batch_size, num_frames, frame_size, num_workers, prefetch_factor)
    if size >= need:
        return None
    message = (
        f"{path} holds {size / MIB:.0f} MiB, but {num_workers} data workers need about {need / MIB:.0f} MiB of "
        f"shared memory ({per_worker / MIB:.0f} MiB each: {prefetch_factor} prefetched batches of {batch_size} x "
        f"{num_frames} x {frame_size} x {frame_size} x 3 bytes); they will die with 'bus error ... insufficient "
        "shared memory'. In a container run with --ipc=host or --shm-size=" f"{max(1, -(-2 * need // 2**30))}g, "
        "or lower data.num_workers / data.batch_size")
    log.warning(message)
    return message
