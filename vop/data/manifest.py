"""The video manifest: one JSON line per video with what decoding it found.

`scripts/check_videos.py` writes it (in parallel, with a progress bar); datasets read it when it
exists, so videos already known to be broken are excluded before training or evaluation starts
instead of being discovered one failed decode at a time. Fields: path, video_id, status
("ok" | "missing" | "error"), frames, fps, duration (s), width, height, size (bytes), error.
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from vop.data.decode_error import VideoDecodeError
from vop.data.decoders.base import Decoder

log = logging.getLogger(__name__)


def probe(path: str) -> dict:
    """fps, duration and size from the container header (no decoding); empty if unreadable."""
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            duration = float(stream.duration * stream.time_base) if stream.duration else (
                container.duration / av.time_base if container.duration else None)
            fps = float(stream.average_rate) if stream.average_rate else None
            return {"fps": fps, "duration": duration, "width": stream.codec_context.width,
                    "height": stream.codec_context.height}
    except (av.FFmpegError, IndexError, ZeroDivisionError):
        return {}


def check_video(decoder: Decoder, path: str | Path, video_id: str = "") -> dict:
    """Count the frames and decode the first, middle and last one: a truncated file fails here."""
    path = str(path)
    record = {"path": path, "video_id": video_id, "status": "ok", "frames": None, "fps": None,
              "duration": None, "width": None, "height": None, "size": None, "error": None}
    if not os.path.isfile(path):
        return {**record, "status": "missing", "error": "file not found"}
    record["size"] = os.path.getsize(path)
    try:
        frames = decoder.num_frames(path)
        record["frames"] = frames
        if frames <= 0:
            raise VideoDecodeError(path, f"it has {frames} frames")
        decoder.decode(path, np.unique(np.array([0, frames // 2, frames - 1])))
    except VideoDecodeError as err:
        return {**record, "status": "error", "error": err.reason}
    return {**record, **{k: v for k, v in probe(path).items() if v is not None}}


def _check(args: tuple[Decoder, str, str]) -> dict:
    return check_video(*args)


def scan(decoder: Decoder, videos: Iterable[tuple[str, str | Path]], workers: int) -> Iterator[dict]:
    """check_video over (video_id, path) pairs in `workers` processes; records come in input order."""
    jobs = [(decoder, str(path), video_id) for video_id, path in videos]
    if workers <= 1:
        yield from map(_check, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_check, jobs, chunksize=8)


def write_manifest(path: str | Path, records: Iterable[dict]) -> Path:
    """Write records as JSON lines (to a temporary file, renamed when complete)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(path: str | Path | None) -> dict[str, dict]:
    """{video path: record} from a manifest, or {} when `path` is unset or absent."""
    if not path or not Path(path).is_file():
        return {}
    records = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                    records[record["path"]] = record
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise ValueError(f"video manifest {path} line {line_no} is not a manifest record ({err}); "
                                     "delete it or rerun scripts/check_videos.py") from err
    log.info("video manifest %s: %d videos, %d not ok", path, len(records),
             sum(r.get("status") != "ok" for r in records.values()))
    return records
