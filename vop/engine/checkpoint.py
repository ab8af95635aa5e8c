"""Checkpoints: the trainable tensors only, as safetensors, with the resolved config inside.

safetensors holds plain tensors and string metadata, so loading a checkpoint never unpickles
arbitrary objects. Writes go to a temporary file first, then an atomic rename.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import safe_open
from torch import nn

from vop.config.stored import stored_config
from vop.errors import UserError
from vop.file_writes import save_tensors
from vop.models.tensor_file import FLOATS, ITEM_SIZE, TensorFileError, read_header
from vop.models.tensors import copy_strict

FORMAT = "vop-checkpoint-1"
RESUME_FORMAT = "vop-resume-1"  # vop.engine.resume writes it; named here to recognise such a file
FILENAME = "checkpoint.safetensors"


class CheckpointError(UserError, ValueError):
    """A checkpoint that does not belong to this model/method or is not a vop checkpoint."""


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: Path, model: nn.Module, cfg: DictConfig, extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "config": json.dumps(OmegaConf.to_container(cfg, resolve=True)),
            "extra": json.dumps(extra or {})}
    return save_tensors(trainable_state(model), path, meta)  # whole or not at all


def resolve_path(ckpt: str | Path) -> Path:
    """A run directory (its checkpoint.safetensors) or a checkpoint file."""
    path = Path(ckpt).expanduser()
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (give a run directory or a {FILENAME} file)")
    return path


def read_checkpoint(ckpt: str | Path, tensors: bool = True) -> tuple[dict[str, torch.Tensor], DictConfig]:
    """(trainable tensors, the run's config); `tensors=False` reads the header only. The header is
    checked before any tensor is read, and the stored config is read as values (vop/config/stored.py)."""
    path = resolve_path(ckpt)
    try:
        info, meta = read_header(path, tuple(ITEM_SIZE))
    except TensorFileError as err:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({err}): a truncated copy, or "
                              f"another format; give a run directory or its {FILENAME}") from None
    kind = meta.get("format")
    if kind == RESUME_FORMAT:
        raise CheckpointError(f"{path} is a resume checkpoint: continue that run with resume={path}, or evaluate "
                              f"its {FILENAME} (ckpt=<run dir>)")
    if kind != FORMAT:
        raise CheckpointError(f"{path} was not written by vop's train.py (its metadata has format={kind}, "
                              f"expected {FORMAT})")
    for name, tensor in info.items():
        if tensor.dtype not in FLOATS:
            raise CheckpointError(f"{path}: tensor {name!r} is {tensor.dtype}; a checkpoint holds trainable "
                                  f"parameters ({', '.join(FLOATS)})")
    cfg = stored_run_config(meta, path)
    if not tensors:
        return {}, cfg
    try:
        with safe_open(str(path), framework="pt") as f:
            values = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors' own error types, for what the header check missed
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({err})") from None
    return values, cfg


def stored_run_config(meta: dict, path: Path) -> DictConfig:
    """The run's config stored in a checkpoint's metadata, read as values (vop/config/stored.py)."""
    try:
        raw = json.loads(meta["config"])
    except KeyError:
        raise CheckpointError(f"{path} has no stored config (metadata key `config`): it cannot say which model "
                              "and method it belongs to") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its stored config (metadata key `config`) is not JSON ({err})") from None
    return stored_config(raw, f"checkpoint {path}")


def check_compatible(saved: DictConfig, cfg: DictConfig, path: str | Path) -> None:
    """Refuse a checkpoint whose model or method differs from the configured one."""
    for key in ("model", "method"):
        want, have = cfg[key].name, saved[key].name
        if want != have:
            raise CheckpointError(f"checkpoint {path} was trained with {key}={have}, but {key}={want} is configured")


def load_trainable(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Copy saved tensors into the model's trainable parameters; the sets must be equal."""
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    copy_strict(trainable, tensors, f"checkpoint {path} (vs the model's trainable tensors)", error=CheckpointError)
