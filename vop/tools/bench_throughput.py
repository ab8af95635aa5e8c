"""`scripts/bench_throughput.py`: how fast each data path feeds training, next to the model's ceiling.

Everything is measured in one run on one machine, so the ratios compare like with like:
- `loader`: videos/s each data path delivers on the device, no model (the only part run without CUDA);
- `ceiling`: the trainer's own training step (`Trainer.train_step`: the same host sync, clipping,
  scaler and scheduler as a run) on synthetic uint8 batches already on the GPU, per method, with
  peak memory (and with gradient checkpointing for `bench.checkpointing_ceiling`);
- `train`: the same step fed by each data path, ratio to the ceiling, peak memory;
- `eval`: encode-only frames/s (ceiling) and encoding fed by each data path.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

import vop
from vop.config.files import load_with_defaults
from vop.data.dataset import Collate, VideoTextDataset, make_loader
from vop.data.decoders.frame_cache import FrameCacheDecoder
from vop.data.decoders.nvdec import NvdecDecoder
from vop.data.gpu_transforms import VideoTransform
from vop.engine import assembly
from vop.engine.device_feed import DeviceFeed
from vop.engine.precision import autocast
from vop.errors import ConfigError
from vop.tools.build_frame_cache import build_frame_cache

log = logging.getLogger(__name__)
GIB = 2**30


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(batches: Iterable, work: Callable[[dict], int], warmup: int, steps: int, device: torch.device) -> float:
    """Items per second of `work` over `steps` batches after `warmup` untimed ones."""
    done, start = 0, None
    for i, batch in enumerate(batches):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        if i == warmup + steps:
            break
        n = work(batch)
        done += n if i >= warmup else 0
    sync(device)
    if start is None or done == 0:
        raise ValueError(f"bench: the loader gave fewer than warmup+1={warmup + 1} batches; lower bench.warmup")
    return done / (time.perf_counter() - start)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / GIB, 2) if device.type == "cuda" else None


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ------------------------------------------------------------------ data paths
def ensure_cache(cfg: DictConfig, splits: dict) -> str | None:
    """None when the frame cache is there (building it if asked), else why not."""
    cache = Path(cfg.bench.frame_cache_dir)
    if (cache / "meta.json").is_file():
        return None
    if not cfg.bench.build_cache_if_missing:
        return f"no frame cache at {cache}: build it with scripts/build_frame_cache.py or bench.build_cache_if_missing=true"
    root = Path(cfg.data.root)
    videos = [(Path(p).relative_to(root).as_posix(), str(p)) for s in splits.values() for p in s.video_paths]
    build_frame_cache(videos, cache, instantiate(cfg.decoder), short_side=cfg.data.frame_size,
                      workers=cfg.bench.num_workers, progress=False)
    return None


def make_decoder(name: str, cfg: DictConfig, splits: dict):
    """(decoder, None) or (None, why this path is skipped here)."""
    try:
        if name == "decord":
            # The decoder config interpolates data.* (e.g. short_side), so resolve it beside cfg.data.
            decord = OmegaConf.merge({"data": cfg.data}, {"decoder": OmegaConf.load(
                Path(vop.ROOT, "configs/decoder/decord.yaml"))})
            return instantiate(decord.decoder), None
        if name == "nvdec":
            return NvdecDecoder(fallback="error"), None
        if name in ("frames_gpu", "frames_cpu"):
            why = ensure_cache(cfg, splits)
            if why:
                return None, why
            gpu = "on" if name == "frames_gpu" else "off"
            return FrameCacheDecoder(cfg.bench.frame_cache_dir, cfg.data.root, gpu_decode=gpu), None
    except (RuntimeError, ConfigError) as err:  # NvdecUnavailable; gpu_decode=on without CUDA or nvJPEG
        return None, str(err)
    raise ValueError(f"bench.paths: unknown data path {name!r} (decord, nvdec, frames_gpu, frames_cpu)")


def loader(cfg: DictConfig, split, decoder, tokenizer, train: bool, device: torch.device):
    d, b = cfg.data, cfg.bench
    ds = VideoTextDataset(split, decoder, b.num_frames, d.train_sampling if train else d.test_sampling,
                          d.frame_size, per="caption" if train else "video", seed=cfg.seed)
    return make_loader(ds, b.batch_size, shuffle=train, num_workers=b.num_workers,
                       collate=Collate(tokenizer if train else None, d.max_text_len), seed=cfg.seed,
                       drop_last=True, pin_memory=device.type == "cuda")


# ------------------------------------------------------------------ model side
def method_cfg(name: str) -> DictConfig:
    return load_with_defaults(Path(vop.ROOT, "configs/method", f"{name}.yaml"))  # variants extend vop.yaml


def build(cfg: DictConfig, method: str, checkpointing: bool, device: torch.device):
    with open_dict(cfg):
        cfg.method = method_cfg(method)
        cfg.trainer.grad_checkpointing = checkpointing
    parts = assembly.build_model_parts(cfg)
    return parts.model.to(device).train(), parts.tokenizer


def trainer_for(cfg: DictConfig, method: str, checkpointing: bool):
    """A real `Trainer` for `method`, ready to step: its step is the one a training run takes."""
    from vop.engine.assembly import build_trainer  # the trainer imports much; only the GPU measurements need it

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.method = method_cfg(method)
        cfg.trainer.grad_checkpointing = checkpointing
    trainer = build_trainer(cfg)
    trainer.training.net.train()
    return trainer


def train_step(trainer) -> Callable[[dict], int]:
    """The trainer's own step (per-item augmentation, autocast, InfoNCE, its host sync for the
    non-finite guard, gradient clipping, GradScaler, scheduler) -> videos done."""
    def step(batch: dict) -> int:
        trainer.train_step(batch, epoch=0)
        return len(batch["item"])
    return step


def encode_step(model, device: torch.device, dtype: torch.dtype) -> Callable[[dict], int]:
    transform = VideoTransform(size=model.image_size, train=False)

    @torch.inference_mode()
    def step(batch: dict) -> int:
        frames = transform(batch["video"].to(device, non_blocking=True), dtype)
        with autocast(device, dtype):
            model.encode_video(frames)
        return frames.shape[0] * frames.shape[1]
    return step


def synthetic_batches(cfg: DictConfig, device: torch.device, text_len: int):
    """The same uint8 batch forever, already on the device: what a perfect loader would deliver."""
    b, s = cfg.bench, cfg.data.frame_size
    gen = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (b.batch_size, b.num_frames, s, s, 3), dtype=torch.uint8, generator=gen)
    ids = torch.randint(1, 49000, (b.batch_size, text_len), generator=gen)
    ids[:, -1] = 49407  # end of text
    # "item" stays on the host, as DeviceFeed leaves it (per-item augmentation seeds).
    batch = {"video": video.to(device), "input_ids": ids.to(device), "item": torch.arange(b.batch_size),
             "skipped": []}
    while True:
        yield batch


# ------------------------------------------------------------------ the run
def run_bench(cfg: DictConfig) -> dict:
    cfg = cfg.copy()
    device, dtype = assembly.device_and_precision(cfg.trainer)
    b = cfg.bench
    splits = assembly.load_splits(cfg, cfg.data.train_split, cfg.data.test_split)
    train_split, test_split = splits[cfg.data.train_split], splits[cfg.data.test_split]
    tokenizer = instantiate(cfg.model.tokenizer)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "model": cfg.model.name, "data": cfg.data.name, "dtype": str(dtype),
              "batch_size": b.batch_size, "num_frames": b.num_frames, "num_workers": b.num_workers,
              "loader": {}, "skipped": {}}
    decoders = {}
    for name in b.paths:
        decoder, why = make_decoder(name, cfg, splits)
        if decoder is None:
            result["skipped"][name] = why
            continue
        decoders[name] = decoder
        batches = DeviceFeed(loader(cfg, train_split, decoder, tokenizer, True, device), device)
        rate = timed(batches, lambda batch: len(batch["video"]), b.warmup, b.steps, device)
        result["loader"][name] = {"videos_per_s": round(rate, 2)}
    if device.type == "cuda":
        result.update(gpu_measurements(cfg, device, dtype, decoders, train_split, test_split, tokenizer))
    else:
        result["note"] = "no CUDA: loader throughput only (the model is not run)"
    write(result, Path(b.out))
    return result


def gpu_measurements(cfg, device, dtype, decoders, train_split, test_split, tokenizer) -> dict:
    b, text_len = cfg.bench, cfg.data.max_text_len
    ceiling, train, evals = {}, {}, {}
    for method in b.methods:
        for ckpt in ([False, True] if method in b.checkpointing_ceiling else [False]):
            reset_memory(device)
            trainer = trainer_for(cfg, method, ckpt)
            rate = timed(synthetic_batches(cfg, device, text_len), train_step(trainer), b.warmup, b.steps, device)
            ceiling[method + ("+ckpt" if ckpt else "")] = {"videos_per_s": round(rate, 1), "peak_gib": peak_gib(device)}
            del trainer
        train[method] = {}
        for name, decoder in decoders.items():
            reset_memory(device)
            trainer = trainer_for(cfg, method, False)
            feed = DeviceFeed(loader(cfg, train_split, decoder, tokenizer, True, device), device)
            rate = timed(feed, train_step(trainer), b.warmup, b.steps, device)
            train[method][name] = {"videos_per_s": round(rate, 1), "peak_gib": peak_gib(device),
                                   "ratio_to_ceiling": round(rate / ceiling[method]["videos_per_s"], 3)}
            del trainer
    model, _ = build(cfg, "zeroshot", False, device)
    model.eval()
    top = timed(synthetic_batches(cfg, device, text_len), encode_step(model, device, dtype), b.warmup, b.steps, device)
    evals["ceiling_frames_per_s"] = round(top, 1)
    for name, decoder in decoders.items():
        feed = DeviceFeed(loader(cfg, test_split, decoder, None, False, device), device)
        rate = timed(feed, encode_step(model, device, dtype), b.warmup, b.steps, device)
        evals[name] = {"frames_per_s": round(rate, 1), "ratio_to_ceiling": round(rate / top, 3)}
    return {"ceiling": ceiling, "train": train, "eval": evals}


def write(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2)
    path.write_text(text + "\n")
    print(text)
    log.info("benchmark written to %s", path)
