"""CPU-side frame shaping: give every video the same square size so a batch can be stacked.

Data workers only do this cheap, deterministic step; augmentation (random-resized crop, flip) and
normalisation run later on the GPU on the uint8 batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vop.data.deferred import DeferredFrames
from vop.errors import ConfigError


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the short side == size; the long side is truncated like torchvision's Resize."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def fit_frames(frames: torch.Tensor | DeferredFrames, size: int) -> torch.Tensor | DeferredFrames:
    """Resize (short side -> size, bicubic, antialiased) and centre-crop: uint8 [T, H, W, 3] -> [T, size, size, 3].

    The resize runs on uint8 directly. PyTorch's uint8 bicubic kernel works like PIL's (rounds and
    clamps to 0..255 after each pass), so frames match the PIL pipeline CLIP was trained with
    within one grey level, and it is several times faster than a float round trip. Off the CPU
    (frames decoded on the GPU) the same resize runs in float and is rounded back to uint8.
    Deferred frames (decoded later, on the device; see vop/data/deferred.py) only record `size`.
    """
    if isinstance(frames, DeferredFrames):
        return frames.fitted(size)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"fit_frames: expected uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if size <= 0:
        raise ValueError(f"fit_frames: size must be positive, got {size}")
    height, width = frames.shape[1], frames.shape[2]
    if min(height, width) != size:
        new_h, new_w = resized_size(height, width, size)
        # [T, 3, H, W] view with channels-last memory: the layout the fast uint8 kernel needs.
        chw = frames.permute(0, 3, 1, 2)
        frames = resize_chw(chw, new_h, new_w).permute(0, 2, 3, 1)  # [T, new_h, new_w, 3]
        height, width = new_h, new_w
    # Same offsets as torchvision's center_crop, so crops agree with the reference transforms.
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return frames[:, top : top + size, left : left + size].contiguous()  # [T, size, size, 3]


def fit_short_side(frames: torch.Tensor | DeferredFrames, size: int) -> torch.Tensor:
    """The whole frame with its short side resized to `size` (X-Pool's training crop is taken from
    the whole frame): uint8 [T, H, W, 3] -> [T, h, w, 3], min(h, w) == size; `pad_videos` stacks them."""
    if isinstance(frames, DeferredFrames):
        raise ConfigError("data.train_crop=whole needs frames decoded in the data workers (decoder=decord, pyav "
                          "or torchcodec); the frame cache and NVDEC decoders ship centre squares")
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"fit_short_side: expected uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    height, width = frames.shape[1], frames.shape[2]
    if min(height, width) == size:
        return frames
    new_h, new_w = resized_size(height, width, size)
    return resize_chw(frames.permute(0, 3, 1, 2), new_h, new_w).permute(0, 2, 3, 1).contiguous()


def pad_videos(videos: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack videos of different frame sizes: uint8 [T, h_i, w_i, 3] -> [B, T, H, W, 3] (H, W the
    largest) and their sizes [B, 2]. The padding repeats the last row/column, so bilinear sampling at
    a box's edge sees what it would see at the frame's border."""
    height, width = max(v.shape[1] for v in videos), max(v.shape[2] for v in videos)
    out = []
    for v in videos:
        rows = torch.arange(height).clamp(max=v.shape[1] - 1)
        cols = torch.arange(width).clamp(max=v.shape[2] - 1)
        out.append(v[:, rows][:, :, cols])
    return torch.stack(out), torch.tensor([[v.shape[1], v.shape[2]] for v in videos])


def resize_chw(chw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic antialiased resize of uint8 [N, 3, H, W] -> uint8 [N, 3, height, width].

    The uint8 kernel exists only on the CPU; elsewhere (CUDA) resize in float, round and clamp.
    The two differ by < 0.05 grey levels on average; up to a few levels where bicubic overshoot is
    clamped (the uint8 kernel clamps after each pass), see tests/library/data/test_frame_cache.py.
    """
    if chw.device.type == "cpu":
        return F.interpolate(chw, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return resize_chw_float(chw, height, width)


def resize_chw_float(chw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    out = F.interpolate(chw.float(), size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)
