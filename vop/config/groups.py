"""The schema of every config group (configs/<group>/*.yaml) and of each command's own keys.

One dataclass per group (`<Name>Group`; `<Name>Command` for a command's whole config, the nested
nodes by what they hold): its fields are the group's keys with their types, ranges and allowed
values. The values live in the YAML files; these classes only say what a value may be. A `_target_`
node (`Target`) is checked against its callable's signature, so a method's `tuner` keys are the
keyword arguments of its class (vop/methods/<name>.py), declared once, where they are read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vop.config.device import PRECISIONS
from vop.config.schema import Target, key
from vop.data.dataset import CROPS
from vop.data.frame_sampling import SAMPLING_MODES
from vop.result_count import MAX_TOPK

METRIC = r"(t2v|v2t)_(R@\d+|MdR|MnR)"


@dataclass
class ModelGroup:
    name: str
    net: Target                  # CLIPVideoModel.from_pretrained / from_config and their arguments
    tokenizer: Target
    arch: Any = key(optional=True)  # HF config.json values of a released checkpoint (clip_b32, clip_b16)


@dataclass
class MethodGroup:
    name: str = key(pattern=r"[a-z][a-z0-9_]*", example="vop_f")
    tuner: Target = key()         # the TuningMethod class and its keyword arguments
    lr_xpool: float = key(low=0.0)  # X-Pool's new-parameter rate: lr_new where a dataset sets no data.lr_new
    lr: float = key(low=0.0)      # pretrained tensors the method trains
    lr_new: float = key(low=0.0)  # parameters the method adds
    max_text_len: int = key(low=3, optional=True)  # VoP: fewer caption tokens, to leave room for text prompts


@dataclass
class DataGroup:
    name: str
    # data=custom (docs/own_videos.md); before `root`, which repeats data.videos, so an unset one is named
    videos: str = key(optional=True, interpolated=True)    # the folder of videos
    captions: str = key(optional=True, interpolated=True)  # the captions file: .json, .csv or .jsonl
    root: str
    splits: Target = key()        # the annotation parser (vop/data/annotations/) and its arguments
    train_split: str = key()
    test_split: str = key()
    num_frames: int = key(low=1)
    train_sampling: str = key(choices=SAMPLING_MODES)
    test_sampling: str = key(choices=SAMPLING_MODES)
    shuffle_group: int = key(low=1)
    hflip: float = key(low=0.0, high=1.0)
    frame_size: int = key(low=1)
    train_crop: str = key(choices=tuple(sorted(CROPS)))
    max_text_len: int = key(low=3)
    batch_size: int = key(low=1)
    eval_batch_size: int = key(low=1)
    num_workers: int = key(low=0)
    max_bad_fraction: float = key(low=0.0, high=1.0)
    allow_missing_test: bool = key()
    manifest: str = key()
    # this dataset's new-parameter rate, where its recipe differs (methods read it: ${oc.select:data.lr_new,...})
    lr_new: float = key(low=0.0, optional=True, interpolated=True)
    test_fraction: float = key(low=0.0, high=1.0, optional=True, interpolated=True)  # data=custom: held-out share
    val_fraction: float = key(low=0.0, high=1.0, optional=True, interpolated=True)   # data=custom: for a val split
    split_seed: int = key(optional=True, interpolated=True)                           # data=custom: the draw


@dataclass
class Checkpointing:
    every_n_steps: int | None = key(low=1)
    keep_last: int = key(low=0)
    best_metric: str | None = key(pattern=METRIC, example="t2v_R@1 or v2t_MdR")
    best_mode: str = key(choices=("max", "min"))
    best_split: str | None = key()


@dataclass
class TrainerGroup:
    epochs: int = key(low=1)
    device: str = key()           # auto | cpu | cuda | cuda:N: vop/config/device.py
    precision: str = key(choices=PRECISIONS)
    eval_every_epoch: bool = key()
    evals_per_epoch: int = key(low=1)
    eval_chunk_size: int = key(low=1)
    max_steps_per_epoch: int | None = key(low=1)
    log_every: int = key(low=1)
    num_threads: int | None = key(low=1)
    progress: bool = key()
    tf32: bool = key()
    grad_checkpointing: bool = key()
    compile: bool = key()
    deterministic: bool = key()
    max_nonfinite_in_row: int = key(low=0)
    stop_after_steps: int | None = key(low=1)
    find_unused_parameters: bool = key()
    postprocess: list[str] = key()  # names from vop/metrics/postprocess.py, checked when the evaluator is built
    bank_captions: int = key(low=0)
    checkpoint: Checkpointing = key()


@dataclass
class OptimGroup:
    optimizer: Target
    weight_decay: float = key(low=0.0)
    decay_all: bool = key()
    grad_clip: float | None = key(low=0.0)


@dataclass
class SchedulerGroup:
    schedule: Target
    warmup_ratio: float = key(low=0.0, high=1.0)


@dataclass
class Wandb:
    project: str
    entity: str | None
    tags: Any
    mode: str = key(choices=("online", "offline", "disabled"))


@dataclass
class LoggerGroup:
    wandb: Wandb | None


@dataclass
class PathsGroup:
    root_dir: str
    data_dir: str
    checkpoint_dir: str
    log_dir: str
    output_dir: str


@dataclass
class Command:
    """Groups and keys every run command has."""
    model: ModelGroup
    method: MethodGroup
    data: DataGroup
    decoder: Target
    trainer: TrainerGroup
    logger: LoggerGroup
    paths: PathsGroup
    task: str
    seed: int


@dataclass
class TrainCommand(Command):
    optim: OptimGroup
    scheduler: SchedulerGroup
    resume: str | None


@dataclass
class EvalCommand(Command):
    modelscope: str | None
    ckpt: str | None
    examples: int = key(low=0)
    examples_topk: int = key(low=1, high=MAX_TOPK)


@dataclass
class Serve:
    """retrieve.py action=serve: where the search page listens, and what an upload may be."""
    host: str = key()
    port: int = key(low=0, high=65535)
    allow_remote: bool = key()
    allowed_hosts: list[str] = key()  # names besides loopback ones and host that requests may address
    max_upload_mb: int = key(low=1)
    upload_timeout_s: float = key(low=1.0)


@dataclass
class Moments:
    """retrieve.py: windows of long videos as gallery rows (build), and how a query's moments are merged."""
    window: float | None = key(low=0.0)   # seconds per window; null: one row per whole video
    stride: float | None = key(low=0.0)   # seconds between window starts; null: half the window
    split: str = key(choices=("windows", "shots", "didemo"))  # shots: PySceneDetect's shots as rows (window: cut longer ones)
    shot_threshold: float = key(low=0.0)  # moments.split=shots: ContentDetector's threshold
    nms_iou: float = key(low=0.0, high=1.0)  # a moment overlapping a better one of its video this much is dropped
    per_video: int = key(low=1)           # at most this many moments of one video per query


@dataclass
class RetrieveCommand(Command):
    index: Target
    serve: Serve
    moments: Moments
    action: str | None = key(choices=("build", "update", "query", "serve", "evaluate"))
    gallery: str | None = key()
    modelscope: str | None = key()
    ckpt: str | None = key()
    split: str | None = key()
    videos: str | None = key()
    captions: str | None = key()
    chunk_videos: int = key(low=1)
    shards: int | None = key(low=1)  # build: shards + manifest (null: one per torchrun process; one file alone)
    max_bad_fraction: float = key(low=0.0, high=1.0)  # build: unreadable videos skipped up to this share
    strict: bool = key()                               # build: stop at the first unreadable video
    query: Any = key()            # a text, a video file, or a list of them
    topk: int = key(low=1, high=MAX_TOPK)  # results per query (vop/result_count.py)
    rerank_k: int = key(low=0)  # text-conditioned galleries: shortlist size of the two-stage search (0: all)
    html: str | None = key()
    thumb_frames: int = key(low=1)


# The command configs (configs/<task>.yaml's `task:`) checked whole; any other config (the scripts')
# has its groups checked and its own keys left to the script.
COMMANDS = {"train": TrainCommand, "eval": EvalCommand, "retrieve": RetrieveCommand}
GROUPS = {"model": ModelGroup, "method": MethodGroup, "data": DataGroup, "decoder": Target, "trainer": TrainerGroup,
          "optim": OptimGroup, "scheduler": SchedulerGroup, "logger": LoggerGroup, "paths": PathsGroup, "index": Target}
