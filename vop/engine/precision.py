"""Device and numeric precision: what `trainer.device` and `trainer.precision` resolve to."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from vop.errors import ConfigError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but CUDA is not available; use trainer.device=cpu or auto")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 where the GPU supports it, fp16 on older GPUs (T4), fp32 on the CPU."""
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if name not in DTYPES:
        raise ConfigError(f"trainer.precision={name!r}: expected one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision for the forward pass; plain fp32 needs no context."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (the scaler is a no-op)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def set_tf32(enabled: bool) -> None:
    """TF32 matmuls/convolutions on Ampere+ GPUs for what still runs in fp32 (ignored elsewhere)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
