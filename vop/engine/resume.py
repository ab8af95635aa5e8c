"""Resume checkpoints: everything needed to continue a run bit for bit, without pickle.

A resume checkpoint `<run dir>/resume/step_<N>.safetensors` holds the trainable tensors plus the
optimizer, scheduler and GradScaler state, the RNG states, epoch, step and the sampler position.
State dicts are nested dicts/lists of tensors and plain numbers: `pack` moves every tensor into
the safetensors file and leaves a JSON skeleton (in the file's metadata) that points at them, so
loading reads tensors and JSON only and never unpickles an object.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import safe_open

from vop.config.stored import values_only
from vop.engine.checkpoint import CheckpointError
from vop.errors import MissingFileError
from vop.file_writes import save_tensors
from vop.models.tensor_file import ITEM_SIZE, read_header

FORMAT = "vop-resume-1"
RESUME_DIR = "resume"
_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")
_TENSOR, _ITEMS, _TUPLE = "__tensor__", "__items__", "__tuple__"
# Settings that change the trajectory: resuming with other values would not continue the same run.
TRAJECTORY_KEYS = ("model.name", "method.name", "data.name", "data.batch_size", "seed", "trainer.epochs",
                   "trainer.max_steps_per_epoch")


def pack(obj, tensors: dict[str, torch.Tensor], prefix: str):
    """JSON-able skeleton of `obj`; tensors go into `tensors` under dotted keys."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {_TENSOR: prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: pack(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {_ITEMS: [[k, pack(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TUPLE: [pack(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [pack(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return pack(torch.from_numpy(obj), tensors, prefix)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"resume state: cannot store {type(obj).__name__} at {prefix!r} without pickle")


def unpack(skeleton, tensors: dict[str, torch.Tensor]):
    if isinstance(skeleton, list):
        return [unpack(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            return tensors[skeleton[_TENSOR]]
        if _ITEMS in skeleton:
            return {k: unpack(v, tensors) for k, v in skeleton[_ITEMS]}
        if _TUPLE in skeleton:
            return tuple(unpack(v, tensors) for v in skeleton[_TUPLE])
        return {k: unpack(v, tensors) for k, v in skeleton.items()}
    return skeleton


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_resume(run_dir: Path, step: int, model_tensors: dict[str, torch.Tensor], state: dict,
                cfg: DictConfig) -> Path:
    """Write `resume/step_<step>.safetensors` atomically (temp file, then rename)."""
    tensors = {f"model.{k}": v for k, v in model_tensors.items()}
    skeleton = pack(state, tensors, "state")
    path = Path(run_dir) / RESUME_DIR / f"step_{step:08d}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "config": json.dumps(OmegaConf.to_container(cfg, resolve=True)),
            "state": json.dumps(skeleton)}
    return save_tensors(tensors, path, meta)


def resume_files(run_dir: Path) -> list[Path]:
    """The run's resume checkpoints, oldest step first."""
    folder = Path(run_dir) / RESUME_DIR
    files = [p for p in folder.glob("step_*.safetensors") if _STEP_FILE.match(p.name)] if folder.is_dir() else []
    return sorted(files, key=lambda p: int(_STEP_FILE.match(p.name).group(1)))


def prune(run_dir: Path, keep_last: int) -> None:
    """Keep the newest `keep_last` resume checkpoints (0 or less keeps all)."""
    if keep_last > 0:
        for old in resume_files(run_dir)[:-keep_last]:
            old.unlink(missing_ok=True)


def resolve_resume(target: str | Path) -> Path:
    """A resume checkpoint file, or a run directory (its newest resume checkpoint)."""
    path = Path(target).expanduser()
    if path.is_dir():
        files = resume_files(path)
        if not files:
            raise MissingFileError(f"resume={target}: no {RESUME_DIR}/step_*.safetensors in {path} "
                                    "(checkpoints are written every trainer.checkpoint.every_n_steps and each epoch)")
        return files[-1]
    if not path.is_file():
        raise MissingFileError(f"resume={target}: no such run directory or checkpoint file")
    return path


def load_resume(target: str | Path) -> tuple[dict[str, torch.Tensor], dict, DictConfig, Path]:
    """(trainable tensors, state, saved config, file) of a resume checkpoint."""
    path = resolve_resume(target)
    try:
        read_header(path, tuple(ITEM_SIZE))  # before any tensor: sizes against the file's length
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for foreign (e.g. pickled) files
        raise CheckpointError(f"{path} is not a safetensors resume checkpoint: {err}") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vop resume checkpoint (metadata format={meta.get('format')!r})")
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    state = unpack(json.loads(meta["state"]), tensors)
    # Compared with the configured run, never instantiated; values only (an interpolation would run a resolver).
    saved = values_only(json.loads(meta["config"]), f"resume checkpoint {path}", "config")
    return model, state, OmegaConf.create(saved), path


def check_same_trajectory(saved: DictConfig, cfg: DictConfig, path: Path) -> None:
    """Refuse to resume with settings that would make a different run, naming the first mismatch."""
    for key in TRAJECTORY_KEYS:
        have, want = OmegaConf.select(saved, key), OmegaConf.select(cfg, key)
        if have != want:
            raise CheckpointError(f"resume checkpoint {path} was written with {key}={have}, but {key}={want} "
                                  f"is configured; resume with the same {key}")
