"""The one place a run's parts are built from the composed config (lightning-hydra-template's
`src/train.py`: every object built from the config here, then handed over).

train, eval, the query encoder, the benchmarks and the HF export all come here for their parts:
- `build_runtime`: determinism, seed, threads, device (one per torchrun rank), precision;
- `load_splits` / `usable_splits`: the annotation parser's splits, bad videos dropped or refused;
- `build_model_parts`: CLIP with the method applied, whichever weights apply (pretrained from
  `model.net`, a trained run's tensors, a released `.pth`, which a ModelScope folder names too),
  its tokenizer, caption length and decoder. No other module builds the model or loads weights;
- `eval_loader` / `build_evaluator`: the evaluation loader (one definition) and the evaluator;
- `build_training`: the training loader and sampler, optimizer, scheduler, scaler, GPU transform,
  non-finite guard, resume state and the (DDP-wrapped) network the loop steps;
- `build_trainer`: all of the above for a training run, handed to the loop (vop/engine/trainer.py),
  which reads no config group but its own `trainer` settings.
The parts are the dataclasses of vop/engine/run_parts.py.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset

from vop.data.bad_videos import (BadVideoCounter, CollateReadable, ReadableVideos, usable_test_split,
                                 usable_train_split)
from vop.data.split_checks import checked_test_split, checked_train_split
from vop.data.dataset import Collate, VideoTextDataset, make_loader
from vop.data.decoders.base import Decoder
from vop.data.gpu_transforms import VideoTransform
from vop.data.in_flight import InFlight
from vop.data.shard_sampler import ShardedSampler
from vop.data.shm import check_shm
from vop.data.split import Split
from vop.engine import distributed
from vop.engine.checkpoint import load_trainable, read_checkpoint
from vop.engine.distributed import DistEnv
from vop.engine.evaluator import Evaluator
from vop.engine.loggers import RunLogger
from vop.engine.optim import build_optimizer, param_groups, warmup_steps, warn_if_too_slow
from vop.engine.precision import grad_scaler, resolve_device, resolve_precision
from vop.engine.run_parts import ModelParts, RunData, RunFiles, Runtime, TrainingParts
from vop.engine.speed import apply_speed_options
from vop.engine.train_state import TrainState
from vop.engine.trainer import Trainer
from vop.engine.training_faults import NonFiniteGuard
from vop.errors import ConfigError
from vop.methods.base import ParameterCount, TuningMethod
from vop.models.clip import CLIPVideoModel
from vop.models.released import is_released, load_released

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the machine
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(num_threads: int | None) -> None:
    """`trainer.num_threads`: intra-op CPU threads of this process (null: PyTorch's default).

    On a small CPU the data workers need cores too; extra compute threads then spin against them."""
    if num_threads:
        torch.set_num_threads(num_threads)


def configure_determinism(enabled: bool) -> None:
    """`trainer.deterministic=true`: deterministic kernels only (an op without one raises).

    Set either way, so a run in a long-lived process (tests, notebooks) does not inherit the
    previous run's mode."""
    if enabled:
        # cuBLAS needs a fixed workspace to be deterministic; it must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled


def device_and_precision(trainer: DictConfig) -> tuple[torch.device, torch.dtype]:
    """`trainer.device` and `trainer.precision` resolved on this machine (auto: CUDA if present)."""
    device = resolve_device(trainer.device)
    return device, resolve_precision(trainer.precision, device)


def build_runtime(cfg: DictConfig, training: bool = False) -> Runtime:
    """Device and precision from `trainer`, seeded; a training run also joins torchrun's process
    group (one device per rank) and sets `trainer.deterministic`."""
    device = resolve_device(cfg.trainer.device)
    env = DistEnv()
    if training:
        env = distributed.init_distributed(device)
        device = distributed.rank_device(device, env)
        configure_determinism(cfg.trainer.deterministic)
    seed_everything(cfg.seed)
    set_threads(cfg.trainer.num_threads)
    return Runtime(device, resolve_precision(cfg.trainer.precision, device), env)


# ------------------------------------------------------------------ the data
def load_splits(cfg: DictConfig, *names: str) -> dict[str, Split]:
    # Build a partial and call it here, so a missing-data error reaches the user as written
    # instead of wrapped (and escaped) in Hydra's InstantiationException.
    splits: dict[str, Split] = instantiate(cfg.data.splits, _partial_=True)()
    for name in names:
        if name not in splits:
            raise ConfigError(f"data={cfg.data.name} has no split {name}; it has {', '.join(sorted(splits))}")
    return splits


def usable_splits(cfg: DictConfig, train: Split | None, test: Split
                  ) -> tuple[Split | None, Split, BadVideoCounter | None, dict]:
    """Drop missing/broken training videos, check the test videos (docs/datasets.md "Bad videos").

    Returns (train, test, the counter enforcing data.max_bad_fraction, report for metrics.json).
    """
    data = cfg.data
    test, report = usable_test_split(checked_test_split(test), data.allow_missing_test, data.manifest)
    counter = None
    if train is not None:
        train, counter = usable_train_split(checked_train_split(train), data.max_bad_fraction, data.manifest)
    return train, test, counter, report


# ------------------------------------------------------------------ the model
def build_clip(cfg: DictConfig, random_init: bool = False) -> CLIPVideoModel:
    """The configured CLIP; `random_init` builds it from `model.arch` (no download) when the weights
    come from elsewhere anyway (a complete released checkpoint, parameter counts)."""
    if random_init and cfg.model.get("arch") is not None:
        return CLIPVideoModel.from_config(**cfg.model.arch,
                                          attn_implementation=cfg.model.net.get("attn_implementation", "sdpa"))
    # A partial called here: a missing-weights error reaches the user as written, not wrapped by Hydra.
    return instantiate(cfg.model.net, _partial_=True)()


def build_model(cfg: DictConfig, random_init: bool = False) -> tuple[CLIPVideoModel, object, TuningMethod,
                                                                      ParameterCount]:
    """CLIP, its tokenizer, and the tuning method applied to it (frozen except its parameters)."""
    model = build_clip(cfg, random_init)
    tokenizer = instantiate(cfg.model.tokenizer)
    method: TuningMethod = instantiate(cfg.method.tuner)
    count = method.apply(model)
    apply_speed_options(model, cfg.trainer)
    return model, tokenizer, method, count


def max_text_len(cfg: DictConfig) -> int:
    """Caption length in tokens: `data.max_text_len`, capped by `method.max_text_len` when the method
    sets one (VoP: 77 positions - 8 text prompts = 69)."""
    limit = cfg.method.get("max_text_len")
    return min(cfg.data.max_text_len, limit) if limit else cfg.data.max_text_len


def build_model_parts(cfg: DictConfig, ckpt: str | Path | None = None, tensors: dict | None = None,
                      before_weights: Callable[[CLIPVideoModel], None] | None = None) -> ModelParts:
    """The configured model with the weights that apply: `model.net`'s pretrained ones; over them a
    trained run's tensors (`ckpt` a run or its checkpoint; `tensors` if already read); or, for a
    released OpenAI-format `.pth` (the whole CLIP), a model built from `model.arch` and filled from
    it. `before_weights(model)` may refuse the model before any tensor is read (the HF export)."""
    released = bool(ckpt) and is_released(ckpt)
    model, tokenizer, method, count = build_model(cfg, random_init=released)
    if before_weights is not None:
        before_weights(model)
    if released:
        load_released(model, ckpt)
    elif ckpt:
        load_trainable(model, tensors if tensors is not None else read_checkpoint(ckpt)[0], ckpt)
    return ModelParts(model, tokenizer, method, count, instantiate(cfg.decoder), max_text_len(cfg))


# ------------------------------------------------------------------ evaluation
def eval_loader(cfg: DictConfig, split: Split, decoder: Decoder, pin_memory: bool, env: DistEnv = DistEnv(),
                rows: Sequence[int] | None = None, readable_only: bool = False, num_workers: int | None = None,
                seed: int | None = None) -> DataLoader:
    """`split`'s videos (all, or `rows`) as evaluation samples them, each rank its share (the sampler
    pads with repeats, which the metric drops by index); `readable_only`: a video that fails to
    decode is listed in its batch's "unreadable" instead of raising (gallery builds)."""
    data = cfg.data
    dataset: Dataset = VideoTextDataset(split, decoder, data.num_frames, data.test_sampling, data.frame_size,
                                        per="video", seed=cfg.seed if seed is None else seed)
    collate = Collate()
    if readable_only:
        dataset, collate = ReadableVideos(dataset), CollateReadable(collate)
    if rows is not None:
        dataset = Subset(dataset, rows)
    sampler = ShardedSampler(dataset, env.world_size, env.rank, shuffle=False)  # one process: every video, in order
    return make_loader(dataset, data.eval_batch_size, shuffle=False,
                       num_workers=data.num_workers if num_workers is None else num_workers, collate=collate,
                       seed=cfg.seed if seed is None else seed, pin_memory=pin_memory, sampler=sampler)


def build_evaluator(cfg: DictConfig, split: Split, parts: ModelParts, runtime: Runtime,
                    bank_split: Split | None = None) -> Evaluator:
    """Each rank encodes its share of the videos and of the captions; the metric gathers them. `bank_split`
    (the training split) gives the bank of captions that single-query post-processing normalises with."""
    device, env = runtime.device, runtime.env
    loader = eval_loader(cfg, split, parts.decoder, pin_memory=device.type == "cuda", env=env, readable_only=True)
    return Evaluator(split, loader, parts.tokenizer, parts.text_len, device, runtime.dtype,
                     parts.model.image_size, chunk_size=cfg.trainer.eval_chunk_size,
                     progress=cfg.trainer.progress and env.is_main, rank=env.rank, world_size=env.world_size,
                     postprocess=cfg.trainer.postprocess, bank_captions=bank_captions(bank_split, cfg.trainer.bank_captions))


def bank_captions(split: Split | None, count: int) -> list[str]:
    """`count` captions evenly spaced over `split` (all of them when it has fewer): fixed, no random draw."""
    if split is None or count == 0 or split.num_captions == 0:
        return []
    picks = np.unique(np.linspace(0, split.num_captions - 1, min(count, split.num_captions)).round().astype(int))
    return [split.captions[i] for i in picks.tolist()]


# ------------------------------------------------------------------ training
def per_rank_batch(global_batch: int, env: DistEnv) -> int:
    """`data.batch_size` is the GLOBAL batch (the contrastive problem's size); each rank loads its share."""
    if global_batch % env.world_size:
        raise ConfigError(f"data.batch_size={global_batch} (the global batch) must be divisible by the number "
                          f"of processes ({env.world_size})")
    return global_batch // env.world_size


def train_loader(cfg: DictConfig, split: Split, parts: ModelParts, pin_memory: bool,
                 env: DistEnv = DistEnv()) -> tuple[DataLoader, ShardedSampler]:
    data = cfg.data
    # skip_bad: an unreadable video is replaced by another draw and reported in the batch.
    dataset = VideoTextDataset(split, parts.decoder, data.num_frames, data.train_sampling, data.frame_size,
                               per="caption", seed=cfg.seed, skip_bad=True, crop=data.train_crop)
    # drop_last keeps every step's contrastive problem the same size (B negatives) and every
    # rank's share equal, so the gathered global batch is the single-process one.
    # data.shuffle_group: blocks of consecutive items that share a batch (synthetic twins: 2).
    group = data.shuffle_group
    if data.batch_size % group:
        raise ConfigError(f"data.batch_size={data.batch_size} must be divisible by data.shuffle_group={group}")
    sampler = ShardedSampler(dataset, env.world_size, env.rank, shuffle=True, seed=cfg.seed, drop_last=True,
                             group=group)
    if not parts.decoder.deferred:  # deferred frames cross as bytes or indices: little shared memory
        check_shm(per_rank_batch(data.batch_size, env), data.num_frames, data.frame_size, data.num_workers)
    collate = Collate(parts.tokenizer, parts.text_len, pad=data.train_crop == "whole")
    loader = make_loader(InFlight(dataset, data.num_workers), per_rank_batch(data.batch_size, env), shuffle=True,
                         num_workers=data.num_workers, collate=collate, seed=cfg.seed, drop_last=True,
                         pin_memory=pin_memory, sampler=sampler)
    return loader, sampler


def build_training(cfg: DictConfig, split: Split, parts: ModelParts, runtime: Runtime) -> TrainingParts:
    """The loader, optimizer (the method's parameter groups), schedule, scaler, transform and network
    of a training run; `parts.model` is already on `runtime.device`."""
    device, env, model = runtime.device, runtime.env, parts.model
    loader, sampler = train_loader(cfg, split, parts, pin_memory=device.type == "cuda", env=env)
    steps = min(len(loader), cfg.trainer.max_steps_per_epoch or len(loader))
    if steps == 0:
        raise ConfigError(f"{split.num_captions} training pairs give no full batch of "
                          f"data.batch_size={cfg.data.batch_size}")
    groups = param_groups(model, parts.method, cfg.method.lr, cfg.method.lr_new, cfg.optim.weight_decay,
                          decay_all=cfg.optim.decay_all)
    warn_if_too_slow(cfg.model, groups)
    optimizer = build_optimizer(instantiate(cfg.optim.optimizer), groups)
    total = steps * cfg.trainer.epochs
    scheduler = instantiate(cfg.scheduler.schedule)(
        optimizer, num_warmup_steps=warmup_steps(total, cfg.scheduler.warmup_ratio), num_training_steps=total)
    scaler = grad_scaler(device, runtime.dtype)
    # data.hflip: flip probability; datasets whose captions say left/right set 0.
    transform = VideoTransform(size=model.image_size, train=True, hflip=cfg.data.hflip)
    guard = NonFiniteGuard(cfg.trainer.max_nonfinite_in_row)
    net: nn.Module = DualEncoder(model)
    if env.enabled:
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(net, device_ids=ids, find_unused_parameters=cfg.trainer.find_unused_parameters)
    return TrainingParts(loader, sampler, steps, cfg.data.batch_size, cfg.seed, transform, net,
                         [p for p in model.parameters() if p.requires_grad], optimizer, scheduler, scaler,
                         cfg.optim.grad_clip, guard, TrainState(optimizer, scheduler, scaler, guard))


class DualEncoder(nn.Module):
    """One forward for both towers: DDP synchronises gradients of what runs inside `forward`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # [b, D] and [b, D], or [b, T, D] frames where the pooling depends on the caption (X-Pool)
        return self.model.encode_text(input_ids), self.model.encode_video_items(frames)


def build_trainer(cfg: DictConfig, ckpt: str | Path | None = None) -> Trainer:
    """A training run: every part built from `cfg` in the order a run needs them (annotations before
    weights, so a missing dataset fails in seconds), handed to the loop, ready to `fit`; `ckpt`: a
    finished run's tensors over the model (to evaluate it again)."""
    runtime = build_runtime(cfg, training=True)
    if not runtime.env.is_main:
        logging.getLogger().setLevel(logging.WARNING)  # one console, rank 0's
    # Every rank writes (rank 0) or reads (resume) rank 0's directory.
    files = RunFiles(Path(distributed.broadcast_object(str(cfg.paths.output_dir))), Path(cfg.paths.log_dir) / cfg.task,
                     cfg.get("resume"), cfg, cfg.method.name)
    d, best_split = cfg.data, cfg.trainer.checkpoint.best_split
    # Annotations first: a missing dataset should fail in seconds, before weights load.
    # Rank 0 first: it may write the synthetic dataset that the others then read.
    with distributed.main_first():
        splits = load_splits(cfg, d.train_split, d.test_split, best_split or d.test_split)
    parts = build_model_parts(cfg, ckpt)
    parts.model.to(runtime.device)
    log.info("model %s, method %s", cfg.model.name, cfg.method.name)  # its trainable count: logged by apply()
    train, test, bad_videos, report = usable_splits(cfg, splits[d.train_split], splits[d.test_split])
    splits.update({d.train_split: train, d.test_split: test})  # docs/datasets.md "Bad videos"
    data = RunData(splits, train, test, d.test_split, bad_videos, report)
    logger = RunLogger(files.run_dir, cfg, enabled=runtime.env.is_main)
    training = build_training(cfg, train, parts, runtime) if parts.count.trainable else None

    def evaluator(split: str) -> Evaluator:
        return build_evaluator(cfg, splits[split], parts, runtime, bank_split=train)

    return Trainer(files, runtime, parts, data, training, evaluator, logger)
