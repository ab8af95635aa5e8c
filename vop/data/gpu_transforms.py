"""Batched video augmentation and CLIP normalisation on whatever device the frames are on.

Workers ship uint8 frames (4x less host->device traffic than float); this module turns a batch
into model input on the GPU: one random resized crop + horizontal flip per video (the same for all
of its frames) for training, a resize + centre crop for evaluation, then CLIP's mean/std.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def sample_crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                    generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """A random (top, left, h, w) covering `scale` of the area with aspect in `ratio`.

    Same distribution as the usual RandomResizedCrop: 10 tries, then the largest centred box
    that fits the ratio range.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(3, generator=generator).tolist()
        target = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def crop_theta(box: tuple[int, int, int, int], flip: bool, height: int, width: int) -> torch.Tensor:
    """Affine matrix [2, 3] for `F.affine_grid` that samples `box` (optionally mirrored)."""
    top, left, h, w = box
    sx = (w / width) * (-1.0 if flip else 1.0)
    return torch.tensor([[sx, 0.0, (2 * left + w) / width - 1.0],
                         [0.0, h / height, (2 * top + h) / height - 1.0]])


class VideoTransform:
    """uint8 [B, T, H, W, 3] -> normalised [B, T, 3, size, size] in the requested dtype."""

    def __init__(self, size: int = 224, train: bool = False, scale: tuple[float, float] = (0.5, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: float = 0.5,
                 mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD):
        self.size, self.train = size, train
        self.scale, self.ratio, self.hflip = tuple(scale), tuple(ratio), hflip
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)

    def __call__(self, frames: torch.Tensor, dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 sizes: torch.Tensor | list | None = None) -> torch.Tensor:
        """`generator`: one for the batch (drawn video by video) or one per video, which makes a
        video's crop independent of its batch neighbours (needed for DDP == single process).
        `sizes` [B, 2] (training): each video's frame size inside the padded batch (whole frames of
        different shapes, `data.train_crop=whole`); crops are drawn from that region."""
        b, t, h, w, c = frames.shape
        x = frames.permute(0, 1, 4, 2, 3).reshape(b, t * c, h, w).float()  # [B, T*3, H, W]
        x = self.augment(x, generator, sizes) if self.train else self.resize_center(x)
        x = x.view(b, t, c, self.size, self.size) / 255.0
        mean = self.mean.to(x.device).view(1, 1, c, 1, 1)
        std = self.std.to(x.device).view(1, 1, c, 1, 1)
        return ((x - mean) / std).to(dtype)

    def augment(self, x: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None,
                sizes: torch.Tensor | list | None = None) -> torch.Tensor:
        """One crop box and flip per video, all frames at once: a single batched grid_sample."""
        b, _, h, w = x.shape
        if isinstance(generator, (list, tuple)) and len(generator) != b:
            raise ValueError(f"augment: {len(generator)} generators for a batch of {b} videos")
        valid = [(h, w)] * b if sizes is None else sizes.tolist() if isinstance(sizes, torch.Tensor) else sizes
        # each video's own (h, w), at the top-left of the padded frame
        thetas = []
        for i in range(b):
            gen = generator[i] if isinstance(generator, (list, tuple)) else generator
            box = sample_crop_box(*valid[i], self.scale, self.ratio, gen)
            flip = bool(torch.rand(1, generator=gen) < self.hflip)
            thetas.append(crop_theta(box, flip, h, w))
        theta = torch.stack(thetas).to(x.device)  # [B, 2, 3]
        grid = F.affine_grid(theta, [b, x.shape[1], self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def resize_center(self, x: torch.Tensor) -> torch.Tensor:
        """Resize the short side to `size` (bicubic, antialiased) and take the centre square."""
        h, w = x.shape[-2:]
        if min(h, w) != self.size:
            scale = self.size / min(h, w)
            new = (max(self.size, round(h * scale)), max(self.size, round(w * scale)))
            x = F.interpolate(x, size=new, mode="bicubic", antialias=True, align_corners=False).clamp(0, 255)
            h, w = new
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return x[..., top:top + self.size, left:left + self.size]
