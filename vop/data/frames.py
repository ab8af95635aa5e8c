"""CPU-side frame shaping: give every video the same square size so a batch can be stacked.

Data workers only do this cheap, deterministic step; augmentation (random-resized crop, flip) and
normalisation run later on the GPU on the uint8 batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the short side == size; the long side is truncated like torchvision's Resize."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def fit_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (short side -> size, bicubic, antialiased) and centre-crop: uint8 [T, H, W, 3] -> [T, size, size, 3].

    The resize runs on uint8 directly. PyTorch's uint8 bicubic kernel works like PIL's (rounds and
    clamps to 0..255 after each pass), so frames match the PIL pipeline CLIP was trained with
    within one grey level, and it is several times faster than a float round trip.
    """
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"fit_frames: expected uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if size <= 0:
        raise ValueError(f"fit_frames: size must be positive, got {size}")
    height, width = frames.shape[1], frames.shape[2]
    if min(height, width) != size:
        new_h, new_w = resized_size(height, width, size)
        # [T, 3, H, W] view with channels-last memory: the layout the fast uint8 kernel needs.
        chw = frames.permute(0, 3, 1, 2)
        chw = F.interpolate(chw, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
        frames = chw.permute(0, 2, 3, 1)  # [T, new_h, new_w, 3]
        height, width = new_h, new_w
    # Same offsets as torchvision's center_crop, so crops agree with the reference transforms.
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return frames[:, top : top + size, left : left + size].contiguous()  # [T, size, size, 3]
