"""Builds the run's parts from the composed config (everything with `_target_` is instantiated)."""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from vop.data.bad_videos import BadVideoCounter, usable_test_split, usable_train_split
from vop.data.checks import checked_test_split, checked_train_split
from vop.data.dataset import Collate, VideoTextDataset, make_loader
from vop.data.decoders.base import Decoder
from vop.data.shard_sampler import ShardedSampler
from vop.data.shm import check_shm
from vop.data.split import Split
from vop.engine.distributed import DistEnv
from vop.engine.evaluator import Evaluator
from vop.engine.speed import apply_speed_options
from vop.engine.training_faults import InFlight
from vop.errors import ConfigError
from vop.methods.base import ParameterCount, TuningMethod
from vop.models.clip import CLIPVideoModel

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(num_threads: int | None) -> None:
    """`trainer.num_threads`: intra-op CPU threads of this process (null: PyTorch's default).

    On a small CPU the data workers need cores too; extra compute threads then spin against them."""
    if num_threads:
        torch.set_num_threads(num_threads)


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


def load_splits(cfg: DictConfig, *names: str) -> dict[str, Split]:
    # Build a partial and call it here, so a missing-data error reaches the user as written
    # instead of wrapped (and escaped) in Hydra's InstantiationException.
    splits: dict[str, Split] = instantiate(cfg.data.splits, _partial_=True)()
    for name in names:
        if name not in splits:
            raise ConfigError(f"data={cfg.data.name} has no split {name}; it has {', '.join(sorted(splits))}")
    return splits


def usable_splits(cfg: DictConfig, train: Split | None, test: Split) -> tuple[Split | None, Split, BadVideoCounter | None, dict]:
    """Drop missing/broken training videos, check the test videos (docs/datasets.md "Bad videos").

    Returns (train, test, the counter enforcing data.max_bad_fraction, report for metrics.json).
    """
    data = cfg.data
    test, report = usable_test_split(checked_test_split(test), data.allow_missing_test, data.manifest)
    counter = None
    if train is not None:
        train, counter = usable_train_split(checked_train_split(train), data.max_bad_fraction, data.manifest)
    return train, test, counter, report


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


def per_rank_batch(global_batch: int, env: DistEnv) -> int:
    """`data.batch_size` is the GLOBAL batch (the contrastive problem's size); each rank loads its share."""
    if global_batch % env.world_size:
        raise ConfigError(f"data.batch_size={global_batch} (the global batch) must be divisible by the number "
                          f"of processes ({env.world_size})")
    return global_batch // env.world_size


def train_loader(cfg: DictConfig, split: Split, decoder: Decoder, tokenizer, pin_memory: bool,
                 env: DistEnv = DistEnv()) -> tuple[DataLoader, VideoTextDataset, ShardedSampler]:
    data = cfg.data
    # skip_bad: an unreadable video is replaced by another draw and reported in the batch.
    dataset = VideoTextDataset(split, decoder, data.num_frames, data.train_sampling, data.frame_size,
                               per="caption", seed=cfg.seed, skip_bad=True, crop=data.train_crop)
    # drop_last keeps every step's contrastive problem the same size (B negatives) and every
    # rank's share equal, so the gathered global batch is the single-process one.
    # data.shuffle_group: blocks of consecutive items that share a batch (synthetic twins: 2).
    group = data.get("shuffle_group", 1)
    if data.batch_size % group:
        raise ConfigError(f"data.batch_size={data.batch_size} must be divisible by data.shuffle_group={group}")
    sampler = ShardedSampler(dataset, env.world_size, env.rank, shuffle=True, seed=cfg.seed, drop_last=True,
                             group=group)
    if not decoder.deferred:  # deferred frames cross as bytes or indices: little shared memory
        check_shm(per_rank_batch(data.batch_size, env), data.num_frames, data.frame_size, data.num_workers)
    loader = make_loader(InFlight(dataset, data.num_workers), per_rank_batch(data.batch_size, env), shuffle=True,
                         num_workers=data.num_workers, collate=Collate(tokenizer, max_text_len(cfg), pad=data.train_crop == "whole"),
                         seed=cfg.seed, drop_last=True, pin_memory=pin_memory, sampler=sampler)
    return loader, dataset, sampler


def build_evaluator(cfg: DictConfig, split: Split, decoder: Decoder, tokenizer, device: torch.device,
                    dtype: torch.dtype, image_size: int, env: DistEnv = DistEnv()) -> Evaluator:
    """Each rank encodes its share of the videos (the sampler pads with repeats, which the metric
    drops by index) and of the captions; the metric gathers them."""
    data = cfg.data
    dataset = VideoTextDataset(split, decoder, data.num_frames, data.test_sampling, data.frame_size,
                               per="video", seed=cfg.seed)
    sampler = ShardedSampler(dataset, env.world_size, env.rank, shuffle=False)
    loader = make_loader(dataset, data.eval_batch_size, shuffle=False, num_workers=data.num_workers,
                         collate=Collate(), seed=cfg.seed, pin_memory=device.type == "cuda", sampler=sampler)
    return Evaluator(split, loader, tokenizer, max_text_len(cfg), device, dtype, image_size,
                     chunk_size=cfg.trainer.eval_chunk_size, progress=cfg.trainer.progress and env.is_main,
                     rank=env.rank, world_size=env.world_size)
