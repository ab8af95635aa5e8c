"""One validation step for a composed config, run before any data, weights or videos load.

Each rule names a key, the type and range (or the choices) it accepts; a key the config does not
have (eval.py has no `optim`) is not checked. A broken rule raises ConfigError naming the key, the
value given and what is allowed. `trainer.precision=fp16` on a CPU is refused, not silently
accepted: CPUs have no fast fp16 math, so fp32 (`auto`) or bf16 is what such a run wants.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from vop.data.dataset import CROPS
from vop.data.frame_sampling import SAMPLING_MODES
from vop.errors import ConfigError

_MISSING = object()


@dataclass(frozen=True)
class Int:
    low: int | None = None
    high: int | None = None
    nullable: bool = False

    def allowed(self) -> str:
        return _range("an integer", self.low, self.high, self.nullable)

    def ok(self, value) -> bool:
        # bool is an int in Python; `true` is not a count.
        return isinstance(value, int) and not isinstance(value, bool) and _within(value, self.low, self.high)


@dataclass(frozen=True)
class Float:
    low: float | None = None
    high: float | None = None
    nullable: bool = False

    def allowed(self) -> str:
        return _range("a finite number", self.low, self.high, self.nullable)

    def ok(self, value) -> bool:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and math.isfinite(value) and _within(value, self.low, self.high)


@dataclass(frozen=True)
class Choice:
    options: tuple
    nullable: bool = False

    def allowed(self) -> str:
        shown = ", ".join(str(o) for o in self.options)
        return f"one of {shown}" + (" or null" if self.nullable else "")

    def ok(self, value) -> bool:
        return value in self.options


@dataclass(frozen=True)
class Pattern:
    regex: str
    example: str
    nullable: bool = False

    def allowed(self) -> str:
        return f"a name like {self.example}" + (" or null" if self.nullable else "")

    def ok(self, value) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None


def _range(kind: str, low, high, nullable: bool) -> str:
    bounds = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
    text = " and ".join(b for b in bounds if b)
    return f"{kind}{' ' + text if text else ''}{' or null' if nullable else ''}"


def _within(value, low, high) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


RULES: dict[str, Int | Float | Choice | Pattern] = {
    "seed": Int(),
    "method.lr": Float(low=0.0),
    "method.lr_new": Float(low=0.0),
    "optim.weight_decay": Float(low=0.0),
    "optim.grad_clip": Float(low=0.0, nullable=True),
    "scheduler.warmup_ratio": Float(low=0.0, high=1.0),
    "data.num_frames": Int(low=1),
    "data.batch_size": Int(low=1),
    "data.eval_batch_size": Int(low=1),
    "data.num_workers": Int(low=0),
    "data.frame_size": Int(low=1),
    "data.max_text_len": Int(low=3),
    "data.max_bad_fraction": Float(low=0.0, high=1.0),
    "data.train_sampling": Choice(SAMPLING_MODES),
    "data.test_sampling": Choice(SAMPLING_MODES),
    "data.train_crop": Choice(tuple(sorted(CROPS))),
    "data.hflip": Float(low=0.0, high=1.0),
    "data.shuffle_group": Int(low=1),
    "data.lr_new": Float(low=0.0),
    "optim.decay_all": Choice((False, True)),
    "trainer.epochs": Int(low=1),
    "trainer.precision": Choice(("auto", "fp32", "fp16", "bf16")),
    "trainer.evals_per_epoch": Int(low=1),
    "trainer.eval_chunk_size": Int(low=1),
    "trainer.max_steps_per_epoch": Int(low=1, nullable=True),
    "trainer.log_every": Int(low=1),
    "trainer.num_threads": Int(low=1, nullable=True),
    "trainer.max_nonfinite_in_row": Int(low=0),
    "trainer.stop_after_steps": Int(low=1, nullable=True),
    "trainer.checkpoint.every_n_steps": Int(low=1, nullable=True),
    "trainer.checkpoint.keep_last": Int(low=0),
    "trainer.checkpoint.best_metric": Pattern(r"(t2v|v2t)_(R@\d+|MdR|MnR)", "t2v_R@1 or v2t_MdR", nullable=True),
    "trainer.checkpoint.best_mode": Choice(("max", "min")),
    "examples": Int(low=0),                 # eval.py
    "topk": Int(low=1),                     # retrieve.py
    "thumb_frames": Int(low=1),
    "chunk_videos": Int(low=1),
    "action": Choice(("build", "query"), nullable=True),
}

# One batch of frames as the model sees them ([B, T, 3, S, S] float32) may take at most this share
# of the memory that holds it: the activations, the model and the data workers need the rest.
FRAME_BATCH_SHARE = 0.5


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first broken rule; checks only the keys `cfg` has."""
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
        if value is _MISSING or (value is None and getattr(rule, "nullable", False)):
            continue
        if not rule.ok(value):
            raise ConfigError(f"{key}={_show(value)} is not allowed: expected {rule.allowed()}")
    check_device(cfg)
    check_frame_memory(cfg)


def _show(value) -> str:
    return "''" if value == "" else str(value)


def check_device(cfg: DictConfig) -> None:
    """`trainer.device` is auto, cpu, cuda or cuda:N; fp16 needs a GPU."""
    import torch

    device = OmegaConf.select(cfg, "trainer.device", default=None)
    if device is None:
        return
    name = str(device)
    if name not in ("auto", "cpu", "cuda") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(f"trainer.device={name} is not allowed: expected one of auto, cpu, cuda, cuda:N")
    on_cpu = name == "cpu" or (name == "auto" and not torch.cuda.is_available())
    if on_cpu and OmegaConf.select(cfg, "trainer.precision", default=None) == "fp16":
        raise ConfigError("trainer.precision=fp16 is not allowed on the CPU (trainer.device="
                          f"{name}): use trainer.precision=fp32 (or auto), or bf16")


def check_frame_memory(cfg: DictConfig) -> None:
    """A batch of frames must fit: data.num_frames=1000 used to run until the OOM killer came."""
    data = cfg.get("data")
    if data is None or "num_frames" not in data:
        return
    size = _image_size(cfg)
    batch = max(data.get("batch_size", 1), data.get("eval_batch_size", 1))
    need = batch * data.num_frames * 3 * size * size * 4  # bytes of [B, T, 3, S, S] float32
    have, where = _memory(cfg)
    if have and need > FRAME_BATCH_SHARE * have:
        raise ConfigError(
            f"data.num_frames={data.num_frames} with a batch of {batch} videos needs {need / 2**30:.1f} GiB for "
            f"one batch of {size}x{size} frames in float32, more than {FRAME_BATCH_SHARE:.0%} of the "
            f"{have / 2**30:.1f} GiB of {where}: lower data.num_frames or data.batch_size / data.eval_batch_size")


def _image_size(cfg: DictConfig) -> int:
    for key in ("model.arch.vision.image_size", "model.net.vision.image_size"):
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, int):
            return value
    return 224  # every CLIP this project configures


def _memory(cfg: DictConfig) -> tuple[int, str]:
    """(bytes, what) of the memory the frame batch lives in: the GPU's, or the machine's RAM."""
    import torch

    device = str(OmegaConf.select(cfg, "trainer.device", default="auto"))
    if device != "cpu" and torch.cuda.is_available():
        index = int(device[5:]) if device.startswith("cuda:") else 0
        return torch.cuda.get_device_properties(index).total_memory, "GPU memory"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "RAM"
    except (ValueError, OSError, AttributeError):
        return 0, "RAM"  # unknown: not checked
