"""What `trainer.device` and `trainer.precision` may be: the rules, in one place.

vop/config/check.py applies them to a composed config before any data or weights load;
vop/engine/precision.py applies them where the names become a torch device and dtype.
"""
from __future__ import annotations

import torch

from vop.errors import ConfigError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# auto: bf16 where the GPU supports it, fp16 on older GPUs (T4), fp32 on the CPU (vop.engine.precision)
PRECISIONS = ("auto", *DTYPES)
DEVICES = ("auto", "cpu", "cuda", "cuda:N")  # cuda:N: GPU number N


def check_device_name(name: str) -> None:
    """`trainer.device` is auto, cpu, cuda or cuda:N."""
    if name not in ("auto", "cpu", "cuda") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(f"trainer.device={name} is not allowed: expected one of {', '.join(DEVICES)}")


def check_cuda_present(name: str) -> None:
    """A cuda device needs CUDA on this machine (`auto` falls back to the CPU instead)."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but CUDA is not available; use trainer.device=cpu or auto")


def check_precision_name(name: str) -> None:
    if name not in PRECISIONS:
        raise ConfigError(f"trainer.precision={name} is not allowed: expected one of {', '.join(PRECISIONS)}")


def runs_on_cpu(device: str) -> bool:
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def check_precision_on(precision: str, device: str) -> None:
    """fp16 is refused on the CPU: CPUs have no fast fp16 math, so fp32 (`auto`) or bf16 is what
    such a run wants."""
    if precision == "fp16" and runs_on_cpu(device):
        raise ConfigError("trainer.precision=fp16 is not allowed on the CPU (trainer.device="
                          f"{device}): use trainer.precision=fp32 (or auto), or bf16")
