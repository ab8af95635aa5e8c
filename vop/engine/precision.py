"""Device and numeric precision: what `trainer.device` and `trainer.precision` resolve to (what they
may name: vop/config/device.py)."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from vop.config.device import DTYPES, check_cuda_present, check_device_name, check_precision_name


def resolve_device(name: str) -> torch.device:
    """The torch device of `trainer.device` (the names vop/config/device.py allows)."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_cuda_present(name)
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 where the GPU supports it, fp16 on older GPUs (T4), fp32 on the CPU."""
    check_precision_name(name)
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
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
