"""The frame cache: every video decoded once into a few large files of JPEG frames.

Layout of a cache folder:

    meta.json                   format and build parameters (candidates, short side, quality)
    shard-00000.jpg.bin         JPEG frames back to back (shards roll over at `shard_mb`)
    shard-00000.index.jsonl     one line per video: key, original frame count, the stored
                                frames' original indices, byte offsets and lengths, frame size
    failed.jsonl                the videos a build could not read, each with the reason (the
                                `frames` decoder gives that reason when a run asks for one)

A video is keyed by its path relative to the data root (posix), so the cache survives moving the
data folder. For each video the cache keeps `candidates` frames: the `uniform` sample of that many
frames (segment centres; all frames of a shorter video). Readers map a requested index of the
ORIGINAL video to the nearest stored frame (`nearest_stored`), so random sampling still works
(each of T segments spans candidates / T stored frames) and the `uniform` test sample is exact when
`candidates` is an odd multiple of `data.num_frames` (36 = 3 x 12: stored frame 3i+1 is segment
i's centre).

Crash safety: a video's bytes are written and flushed before its index line, so after a kill the
index names only complete videos; on resume the writer truncates each shard to the end of its last
indexed video and drops a half-written index line. (A power cut can lose what the OS had not
written yet; the same truncation repairs that.)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vop.data.frame_sampling import frame_indices

FORMAT = "vop-frame-cache-1"
META = "meta.json"
FAILED = "failed.jsonl"  # the videos a build could not read: one {"key", "reason"} line each


def shard_paths(root: Path, shard: int) -> tuple[Path, Path]:
    return root / f"shard-{shard:05d}.jpg.bin", root / f"shard-{shard:05d}.index.jsonl"


def candidate_indices(num_frames: int, candidates: int) -> np.ndarray:
    """Original indices of the frames a video keeps: all of them, or `candidates` segment centres."""
    if num_frames <= candidates:
        return np.arange(num_frames, dtype=np.int64)
    return frame_indices(num_frames, candidates, "uniform")


def nearest_stored(stored: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in the sorted `stored` [K] of the stored frame nearest to each `wanted` [T] (ties: earlier)."""
    right = np.clip(np.searchsorted(stored, wanted), 0, len(stored) - 1)  # first stored >= wanted
    left = np.clip(right - 1, 0, len(stored) - 1)
    use_left = np.abs(wanted - stored[left]) <= np.abs(stored[right] - wanted)
    return np.where(use_left, left, right)


@dataclass
class CacheEntry:
    """Where one video's stored frames are."""

    shard: int
    num_frames: int          # frames of the original video
    frames: np.ndarray       # [K] original indices of the stored frames (sorted)
    offsets: np.ndarray      # [K] byte offsets in the shard
    lengths: np.ndarray      # [K] JPEG sizes in bytes
    height: int
    width: int

    @classmethod
    def from_record(cls, shard: int, rec: dict) -> "CacheEntry":
        return cls(shard, rec["num_frames"], np.asarray(rec["frames"], dtype=np.int64),
                   np.asarray(rec["offsets"], dtype=np.int64), np.asarray(rec["lengths"], dtype=np.int64),
                   rec["height"], rec["width"])


def read_index(path: Path) -> tuple[list[dict], int]:
    """Complete records of one index file and the byte length they span (a torn last line is ignored)."""
    records, good = [], 0
    if not path.is_file():
        return records, 0
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # written up to a kill: this video is not committed
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good += len(line)
    return records, good


def read_failed(root: Path) -> dict[str, str]:
    """{key: reason} of the videos the builds of the cache at `root` could not read (a later line of a
    key wins; a torn line is ignored)."""
    path = Path(root) / FAILED
    failed = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
                failed[str(record["key"])] = str(record["reason"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return failed


def read_meta(root: Path) -> dict:
    path = Path(root) / META
    if not path.is_file():
        raise FileNotFoundError(f"frame cache not found: {path} is missing. Build it with "
                                f"`python scripts/build_frame_cache.py data=<name>` (docs/speed.md)")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a vop frame cache (format={meta.get('format')!r}, expected {FORMAT})")
    return meta


class FrameCache:
    """Read side: for (video key, stored position) the JPEG bytes; files are opened per call."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.entries: dict[str, CacheEntry] = {}
        self.failed = read_failed(self.root)  # {key: why the build left it out}
        shard = 0
        while shard_paths(self.root, shard)[1].is_file():
            for rec in read_index(shard_paths(self.root, shard)[1])[0]:
                self.entries[rec["key"]] = CacheEntry.from_record(shard, rec)
            shard += 1

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def jpegs(self, key: str, positions: np.ndarray) -> list[bytes]:
        """JPEG bytes of the stored frames `positions` [T] (may repeat) of video `key`."""
        entry = self.entries[key]
        data_path = shard_paths(self.root, entry.shard)[0]
        fd = os.open(data_path, os.O_RDONLY)
        try:
            return [os.pread(fd, int(entry.lengths[p]), int(entry.offsets[p])) for p in positions]
        finally:
            os.close(fd)


class FrameCacheWriter:
    """Append side; reopening a folder resumes it (parameters must match the ones it was built with)."""

    def __init__(self, root: str | Path, params: dict, shard_mb: float = 1024):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.shard_bytes = int(shard_mb * 2**20)
        self._check_meta(params)
        self.done: set[str] = set()
        self.shard, self.size = 0, 0
        while shard_paths(self.root, self.shard)[1].is_file() or shard_paths(self.root, self.shard)[0].is_file():
            self.size = self._repair(self.shard)
            if not shard_paths(self.root, self.shard + 1)[0].is_file():
                break
            self.shard += 1
        self._open()

    def _check_meta(self, params: dict) -> None:
        path = self.root / META
        meta = {"format": FORMAT, **params}
        if path.is_file():
            old = json.loads(path.read_text())
            diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            if diff:
                raise ValueError(f"frame cache {self.root} was built with other parameters ({', '.join(diff)}: "
                                 f"{[old.get(k) for k in diff]} there, {[meta.get(k) for k in diff]} now); "
                                 "use another folder or delete this one")
        else:
            path.write_text(json.dumps(meta, indent=2) + "\n")

    def _repair(self, shard: int) -> int:
        """Drop bytes and index lines after the last committed video of `shard`; returns its data size."""
        data, index = shard_paths(self.root, shard)
        records, good = read_index(index)
        if index.is_file():
            os.truncate(index, good)
        end = max((r["offsets"][-1] + r["lengths"][-1] for r in records if r["offsets"]), default=0)
        if data.is_file():
            os.truncate(data, end)
        self.done.update(r["key"] for r in records)
        return end

    def _open(self) -> None:
        data, index = shard_paths(self.root, self.shard)
        self.data_file, self.index_file = data.open("ab"), index.open("ab")

    def add(self, key: str, num_frames: int, frames: np.ndarray, jpegs: list[bytes], height: int, width: int) -> None:
        if self.size >= self.shard_bytes:
            self.close()
            self.shard, self.size = self.shard + 1, 0
            self._open()
        offsets = np.cumsum([0] + [len(j) for j in jpegs[:-1]]) + self.size
        for jpeg in jpegs:
            self.data_file.write(jpeg)
        self.data_file.flush()  # bytes first, index line second: a kill leaves no dangling entry
        rec = {"key": key, "num_frames": int(num_frames), "frames": [int(f) for f in frames],
               "offsets": [int(o) for o in offsets], "lengths": [len(j) for j in jpegs],
               "height": int(height), "width": int(width)}
        self.index_file.write((json.dumps(rec) + "\n").encode())
        self.index_file.flush()
        self.size += sum(len(j) for j in jpegs)
        self.done.add(key)

    def close(self) -> None:
        for f in (self.data_file, self.index_file):
            f.flush()
            os.fsync(f.fileno())
            f.close()
