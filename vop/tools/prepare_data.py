"""Data preparation (scripts/prepare_data.py): lay out a dataset's folders, check its annotations,
and optionally write a compressed copy of its videos (3 fps, short side 224: what peers train on).

The copy is a complete data root: `<out_root>/annotations` links to the original annotations and
`<out_root>/videos/...` mirrors the original file names (as .mp4), so `data.root=<out_root>` uses it.
Re-encoding is resumable: each file is written under a temporary name and renamed when complete,
and finished files are skipped on the next run.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
from omegaconf import DictConfig
from tqdm import tqdm

from vop.data.split import Split
from vop.tools.dataset_stats import dataset_stats
from vop.tools.selected_splits import load_selected_splits, unique_videos

log = logging.getLogger(__name__)


def even_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) with the short side `short_side` and both even (H.264 yuv420p needs even sizes)."""
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def reencode_video(src: str | Path, dst: str | Path, fps: float, short_side: int, crf: int = 23) -> str:
    """Write `src` as H.264 at `fps` (keeping the frame shown at each output time) with the short
    side `short_side`, via a temporary file; returns "done", "skipped" (exists) or the error."""
    dst = Path(dst)
    if dst.is_file():
        return "skipped"
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}.mp4")
    try:
        _encode(Path(src), tmp, Fraction(fps).limit_denominator(1000), short_side, crf)
        os.replace(tmp, dst)
        return "done"
    except (av.FFmpegError, OSError, ValueError) as err:
        tmp.unlink(missing_ok=True)
        return f"error: {err}"


def _encode(src: Path, dst: Path, fps: Fraction, short_side: int, crf: int) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), mode="w") as out:
        source = inp.streams.video[0]
        source.thread_type = "AUTO"
        height, width = even_size(source.codec_context.height, source.codec_context.width, short_side)
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        written, previous = 0, None

        def emit_until(time: float) -> None:  # output frame k shows what is on screen at k / fps
            nonlocal written
            while written / fps < time:
                image = previous.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
                image.pts, image.time_base = written, 1 / fps
                out.mux(stream.encode(image))
                written += 1

        for frame in inp.decode(source):
            if frame.time is None:
                continue
            if previous is not None:
                emit_until(frame.time)
            previous = frame
        if previous is None:
            raise ValueError(f"{src} has no decodable frame")
        rate = float(source.average_rate or 25)
        emit_until(previous.time + 1 / rate)  # the last frame stays on screen for one source frame
        out.mux(stream.encode())


def _reencode_job(args: tuple[str, str, float, int, int]) -> tuple[str, str]:
    return args[0], reencode_video(*args)


def output_path(path: Path, video_dir: Path, out_videos: Path) -> Path:
    """Mirror `path`'s place under `video_dir` into `out_videos`, as .mp4."""
    try:
        relative = path.relative_to(video_dir)
    except ValueError:
        relative = Path(path.name)
    return (out_videos / relative).with_suffix(".mp4")


def reencode_dataset(splits: dict[str, Split], video_dir: Path, out_root: Path, fps: float, short_side: int,
                     crf: int, workers: int) -> dict[str, int]:
    """Re-encode every present video of `splits` into `out_root/videos`, in parallel, with progress."""
    jobs = [(str(p), str(output_path(p, video_dir, out_root / "videos")), fps, short_side, crf)
            for _, p in unique_videos(splits) if p.is_file()]
    counts = {"done": 0, "skipped": 0, "error": 0}
    with ProcessPoolExecutor(max(workers, 1)) as pool:
        for src, status in tqdm(pool.map(_reencode_job, jobs), total=len(jobs), desc="re-encoding", unit="video"):
            key = status.split(":")[0]
            counts[key] += 1
            if key == "error":
                log.warning("could not re-encode %s: %s", src, status)
    return counts


def prepare(cfg: DictConfig) -> dict:
    """Create `<root>/annotations` and `<root>/videos`, check annotations, optionally re-encode."""
    root = Path(cfg.data.root)
    for sub in ("annotations", "videos"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    splits = load_selected_splits(cfg)  # fails naming any missing or malformed annotation file
    report: dict = {"root": str(root), "splits": dataset_stats(splits)}
    if cfg.prepare.reencode:
        out_root = Path(cfg.prepare.out_root)
        out_root.mkdir(parents=True, exist_ok=True)
        ann = Path(cfg.data.splits.get("annotation_dir") or root / "annotations")
        link = out_root / "annotations"
        if not link.exists():
            link.symlink_to(ann.resolve(), target_is_directory=True)
        video_dir = Path(cfg.data.splits.get("video_dir") or root / "videos")
        report["reencoded"] = reencode_dataset(splits, video_dir, out_root, cfg.prepare.fps, cfg.prepare.short_side,
                                               cfg.prepare.crf, cfg.workers)
        report["use_with"] = f"data.root={out_root}"
    return report
