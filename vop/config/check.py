"""One validation step for a composed config, run before any data, weights or videos load.

Every key is checked against its group's schema (vop/config/groups.py); a broken key raises
ConfigError naming the key, the value given and what is allowed, and an unknown key names the
nearest valid one. `trainer.precision=fp16` on a CPU is refused, not silently
accepted (the device and precision rules: vop/config/device.py).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from vop.config.choices import CHOSEN_GROUPS, override_key
from vop.config.device import check_device_name, check_precision_on
from vop.config.groups import COMMANDS, GROUPS
from vop.config.schema import check_group, validate
from vop.config.stored import interpolations, references
from vop.errors import ConfigError

# One batch of frames as the model sees them ([B, T, 3, S, S] float32) may take at most this share
# of the memory that holds it: the activations, the model and the data workers need the rest.
FRAME_BATCH_SHARE = 0.5
# Groups checked in a script's config (build_frame_cache.yaml's `method` is only a run name).
SCRIPT_GROUPS = ("model", "data", "decoder", "trainer", "optim", "scheduler", "logger", "paths")


def check_config(cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """Raise ConfigError for the first key that breaks its group's schema (vop/config/groups.py), for
    an unknown key, for a key set on the command line (`overrides`) that nothing in the run reads,
    for a device the machine lacks and for a frame batch its memory cannot hold."""
    check_read(cfg, overrides)
    schema = COMMANDS.get(cfg.get("task"))
    if schema is not None:
        validate(cfg, schema, "")
    else:  # a script's config: its groups (its own keys are the script's)
        for name in SCRIPT_GROUPS:
            if name in cfg:
                check_group(cfg[name], GROUPS[name], name)
    check_device(cfg)
    check_frame_memory(cfg)


def check_read(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """A key that only interpolations read (`data.test_fraction`: data=custom's splits name it) set on
    the command line must be named by one in this run's config; otherwise the run would ignore it
    (`+data.test_fraction=0.3` with data=msrvtt9k)."""
    names = None
    for key in (override_key(o) for o in overrides if "=" in o and not o.startswith("~")):
        group, _, leaf = key.partition(".")
        schema = GROUPS.get(group)
        if group not in CHOSEN_GROUPS or "." in leaf or not dataclasses.is_dataclass(schema):
            continue
        rule = next((f.metadata.get("rule") for f in dataclasses.fields(schema) if f.name == leaf), None)
        if rule is None or not rule.interpolated:
            continue
        if names is None:
            container = OmegaConf.to_container(cfg, resolve=False)
            names = {ref for text in interpolations(container).values() for ref in references(text)}
        if key not in names:
            raise ConfigError(f"{key}: nothing in this run reads it ({group} {cfg[group].get('name')} does not use "
                              "it), so it would be ignored; it applies only to the options that use it (e.g. "
                              "data.test_fraction and data.split_seed: data=custom)")


def check_device(cfg: DictConfig) -> None:
    """`trainer.device` is auto, cpu, cuda or cuda:N; fp16 needs a GPU (vop/config/device.py). The
    schema has checked `trainer.precision`'s name; a script's config may have no trainer group."""
    if "trainer" not in cfg:
        return
    device = str(cfg.trainer.device)
    check_device_name(device)
    check_precision_on(cfg.trainer.precision, device)


def check_frame_memory(cfg: DictConfig) -> None:
    """A batch of frames must fit: data.num_frames=1000 used to run until the OOM killer came."""
    data = cfg.get("data")
    if data is None or "num_frames" not in data:
        return
    size = _image_size(cfg)
    batch = max(data.batch_size, data.eval_batch_size)
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
