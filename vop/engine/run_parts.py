"""The parts a run is assembled from (vop/engine/assembly.py builds them; the loop,
vop/engine/trainer.py, and the evaluation commands take them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader

from vop.data.bad_videos import BadVideoCounter
from vop.data.dataset import VideoTextDataset
from vop.data.decoders.base import Decoder
from vop.data.gpu_transforms import VideoTransform
from vop.data.shard_sampler import ShardedSampler
from vop.data.split import Split
from vop.engine.distributed import DistEnv
from vop.engine.train_state import TrainState
from vop.engine.training_faults import NonFiniteGuard
from vop.methods.base import ParameterCount, TuningMethod
from vop.models.clip import CLIPVideoModel


@dataclass(frozen=True)
class Runtime:
    """Where and in what precision a run computes, and its place among torchrun's processes."""
    device: torch.device
    dtype: torch.dtype
    env: DistEnv = field(default_factory=DistEnv)


@dataclass
class ModelParts:
    """A model ready to embed: CLIP with the method applied and its weights loaded, on the CPU."""
    model: CLIPVideoModel
    tokenizer: object
    method: TuningMethod
    count: ParameterCount  # trainable / total parameters of the tuned model
    decoder: Decoder
    text_len: int  # caption tokens (max_text_len)


@dataclass
class RunData:
    """A run's splits after bad videos were dropped, and what was dropped."""
    splits: dict[str, Split]
    train: Split
    test: Split
    test_name: str  # data.test_split
    bad_videos: BadVideoCounter  # counts skipped training videos; stops above data.max_bad_fraction
    report: dict  # the test split's bad-video report, for metrics.json


@dataclass
class RunFiles:
    """Where a run writes: its folder, the `latest` link, the resume it continues, the config it stores."""
    run_dir: Path
    latest_dir: Path  # <log dir>/<task>: where the `latest` link goes
    resume: str | None
    cfg: DictConfig  # saved with every checkpoint, as data: the loop reads only cfg.trainer
    method: str  # the method's name, for messages


@dataclass
class TrainingParts:
    """What the loop steps with, built once a run has something to train (zero-shot never needs it)."""
    loader: DataLoader
    sampler: ShardedSampler
    steps_per_epoch: int
    global_batch: int  # data.batch_size: every rank loads its share
    seed: int  # per-item augmentation seeds
    transform: VideoTransform
    net: nn.Module  # DualEncoder, DDP-wrapped under torchrun
    trainable: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    grad_clip: float  # optim.grad_clip (0: none)
    guard: NonFiniteGuard
    state: TrainState  # what resume restores

    @property
    def dataset(self) -> VideoTextDataset:
        return self.loader.dataset.dataset  # inside InFlight
