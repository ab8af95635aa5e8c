"""`scripts/bench_build.py`: a gallery build's videos/s beside its decode-only and encode-only ceilings.

One model, one machine, one run; each figure measured `bench_build.rounds` times, interleaved (the
median is printed), so machine load drifts hit them alike:
- decode only: the build's own loader (`Encoder.video_loader`: its workers, batch size, pinned memory)
  through the same `DeviceFeed` (the copy to the device), no model;
- encode only: the build's model step (`encode_video_batches`: transform, autocast, embeddings back on
  the host) on batches decoded before the clock starts and held in memory, cycled to as many batches
  as the build has;
- build: `build_gallery` into a fresh temporary folder (chunks saved, captions encoded, gallery written).

A build that decodes in its workers while the model encodes runs near min(decode, encode); one that
alternates would run near the serial rate 1 / (1/decode + 1/encode). On a CPU the workers and the model
share the cores, so the build lands between the two; with the model on a GPU it should near the minimum.
"""
from __future__ import annotations

import itertools
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from vop.config.check import check_config
from vop.data.split import Split
from vop.engine import assembly
from vop.engine.device_feed import DeviceFeed
from vop.engine.embed import encode_video_batches
from vop.errors import ConfigError
from vop.retrieval.gallery import build_gallery
from vop.retrieval.query_encoder import Encoder

log = logging.getLogger(__name__)
MEASURES = ("decode only", "encode only", "build")
LABELS = {"decode only": "decode only (the build's loader, no model)",
          "encode only": "encode only (frames already in memory)",
          "build": "build (build_gallery, chunks + captions + file)"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_split(cfg: DictConfig) -> Split:
    """The first `bench_build.videos` videos of data.test_split (all of them: null)."""
    name = cfg.data.test_split
    split = assembly.load_splits(cfg, name)[name]
    count = cfg.bench_build.videos
    if count is None:
        return split
    if not 1 <= count <= split.num_videos:
        raise ConfigError(f"bench_build.videos={count}: data={cfg.data.name} split {name!r} has {split.num_videos} "
                          "videos (data=synthetic: raise data.splits.num_test)")
    return split.subset(list(range(count)))


def decode_only(encoder: Encoder, split: Split) -> int:
    """Videos the build's loader delivers on the device, no model."""
    done = 0
    for batch in DeviceFeed(encoder.video_loader(split, readable_only=True), encoder.device):
        done += len(batch["index"])
    sync(encoder.device)
    return done


def cached_batches(encoder: Encoder, split: Split, count: int) -> list[dict]:
    """The loader's first `count` batches, decoded now and kept in host memory (pinned on CUDA)."""
    loader = encoder.video_loader(split, readable_only=True)
    batches = [b for b in itertools.islice(iter(loader), count) if len(b["index"])]
    if not batches:
        raise ConfigError(f"bench_build: no video of data={encoder.cfg.data.name} could be decoded")
    return [{"video": b["video"], "index": b["index"]} for b in batches]


def encode_only(encoder: Encoder, batches: list[dict], count: int) -> int:
    """Videos the build's model step encodes from `count` batches cycled over `batches`."""
    done = 0
    cycle = (batches[i % len(batches)] for i in range(count))
    for emb, index in encode_video_batches(encoder.model, cycle, encoder.transform, encoder.device, encoder.dtype,
                                           per_frame=encoder.model.text_conditioned):
        emb.cpu()  # as the build: embeddings back on the host
        done += len(index)
    sync(encoder.device)
    return done


def build(encoder: Encoder, split: Split, chunk_videos: int) -> int:
    """Videos in a gallery built from scratch in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="bench_build_") as folder:
        gallery = build_gallery(encoder, split, Path(folder) / "gallery.safetensors", chunk_videos, progress=False)
        sync(encoder.device)
        return len(gallery.video_ids)


def timed(run) -> tuple[int, float]:
    start = time.perf_counter()
    videos = run()
    return videos, time.perf_counter() - start


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def measure(cfg: DictConfig, encoder: Encoder, split: Split) -> dict[str, tuple[int, float]]:
    """{measure: (videos, median seconds)} over `bench_build.rounds` interleaved rounds."""
    b = cfg.bench_build
    num_batches = len(encoder.video_loader(split))
    cache = cached_batches(encoder, split, min(b.cached_batches, num_batches))
    encode_only(encoder, cache[:1], 1)  # warm-up, not timed: first-call costs (kernels, allocator)
    runs = {"decode only": lambda: decode_only(encoder, split),
            "encode only": lambda: encode_only(encoder, cache, num_batches),
            "build": lambda: build(encoder, split, b.chunk_videos)}
    results: dict[str, list[tuple[int, float]]] = {m: [] for m in MEASURES}
    for _ in range(b.rounds):
        for name in MEASURES:
            results[name].append(timed(runs[name]))
    return {m: (r[0][0], statistics.median(s for _, s in r)) for m, r in results.items()}


def report(cfg: DictConfig, encoder: Encoder, split: Split, figures: dict[str, tuple[int, float]],
           loads: tuple[str, str]) -> str:
    """The header, a markdown table (videos, seconds, videos/s per measure) and the ratios."""
    b, d = cfg.bench_build, encoder.cfg.data
    rate = {m: videos / seconds for m, (videos, seconds) in figures.items()}
    device = torch.cuda.get_device_name(encoder.device) if encoder.device.type == "cuda" else \
        f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    lines = [f"gallery build speed: model={cfg.model.name} method={cfg.method.name} on {device}, {encoder.dtype}, "
             f"torch threads {torch.get_num_threads()}",
             f"{split.num_videos} videos of data={d.name} split {split.name!r} x {d.num_frames} frames "
             f"(frame_size {d.frame_size}), batch {d.eval_batch_size}, {d.num_workers} workers, "
             f"chunk_videos {b.chunk_videos}, median of {b.rounds} rounds; load average before {loads[0]}, "
             f"after {loads[1]}",
             "", "| measure | videos | seconds | videos/s |", "|---|---|---|---|"]
    for m in MEASURES:
        videos, seconds = figures[m]
        lines.append(f"| {LABELS[m]} | {videos} | {seconds:.2f} | {rate[m]:.2f} |")
    ceiling = min(rate["decode only"], rate["encode only"])
    serial = 1 / (1 / rate["decode only"] + 1 / rate["encode only"])
    lines += ["", f"build / min(decode, encode): {rate['build'] / ceiling:.2f}",
              f"build / serial 1/(1/decode + 1/encode): {rate['build'] / serial:.2f}",
              "(1.00 vs min: the build runs at its slower stage's speed; 1.00 vs serial: no overlap at all)"]
    return "\n".join(lines)


def run_bench(cfg: DictConfig) -> dict[str, tuple[int, float]]:
    """Print the table for cfg's model on cfg's data; returns {measure: (videos, seconds)}."""
    check_config(cfg)  # the groups' schemas, the device this machine has
    b = cfg.bench_build
    for key in ("rounds", "cached_batches", "chunk_videos", "batch_size"):
        if b[key] is not None and (not isinstance(b[key], int) or b[key] < 1):
            raise ConfigError(f"bench_build.{key}={b[key]}: expected an integer >= 1")
    assembly.set_threads(cfg.trainer.num_threads)
    if b.batch_size is not None:
        cfg = cfg.copy()
        cfg.data.eval_batch_size = b.batch_size
    split = bench_split(cfg)
    encoder = Encoder(cfg)
    before = load_average()
    figures = measure(cfg, encoder, split)
    print(report(cfg, encoder, split, figures, (before, load_average())))
    return figures
