"""The batched crop/flip/resize/normalise matches a straightforward per-video reference; the crop
boxes follow RandomResizedCrop's law; evaluation resizes as CLIP's PIL preprocessing does."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vop.data.gpu_transforms import CLIP_MEAN, CLIP_STD, VideoTransform, sample_crop_box


def reference(frames: torch.Tensor, box, flip: bool, size: int) -> torch.Tensor:
    """Crop by slicing, resize with interpolate, flip, normalise: one video [T, H, W, 3]."""
    top, left, h, w = box
    x = frames[:, top:top + h, left:left + w].permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if flip:
        x = x.flip(-1)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x / 255 - mean) / std


def test_train_crop_matches_reference_with_the_same_boxes():
    frames = torch.randint(0, 256, (3, 4, 120, 160, 3), dtype=torch.uint8)
    transform = VideoTransform(size=64, train=True, hflip=0.5)
    out = transform(frames, generator=torch.Generator().manual_seed(3))
    # Replay the generator to get the same boxes and flips the transform drew.
    g = torch.Generator().manual_seed(3)
    for b in range(3):
        box = sample_crop_box(120, 160, transform.scale, transform.ratio, g)
        flip = bool(torch.rand(1, generator=g) < 0.5)
        torch.testing.assert_close(out[b], reference(frames[b], box, flip, 64), atol=1e-4, rtol=1e-4)
    assert out.shape == (3, 4, 3, 64, 64)


def test_same_crop_for_all_frames_of_a_video():
    one = torch.randint(0, 256, (1, 1, 96, 96, 3), dtype=torch.uint8)
    frames = one.expand(2, 5, 96, 96, 3).clone()
    out = VideoTransform(size=32, train=True)(frames, generator=torch.Generator().manual_seed(0))
    for t in range(1, 5):
        torch.testing.assert_close(out[:, t], out[:, 0])


def crop_boxes(count: int, height: int, width: int, scale, ratio, seed: int = 1) -> np.ndarray:
    """`count` boxes drawn one after another from one generator -> [count, 4] (top, left, h, w)."""
    g = torch.Generator().manual_seed(seed)
    return np.array([sample_crop_box(height, width, scale, ratio, g) for _ in range(count)])


def ks_distance_from_uniform(values: np.ndarray, low: float, high: float) -> float:
    """Kolmogorov-Smirnov distance between the sample's distribution and uniform on [low, high]."""
    x = np.sort((values - low) / (high - low))
    n = len(x)
    return float(max(np.max(np.arange(1, n + 1) / n - x), np.max(x - np.arange(n) / n)))


@pytest.mark.parametrize("scale,ratio", [((0.1, 0.5), (1 / 2, 2)), ((0.2, 0.6), (3 / 4, 4 / 3))])
def test_crop_scale_and_aspect_are_uniform_over_their_ranges(scale, ratio):
    """RandomResizedCrop's law: area fraction uniform in `scale`, log aspect (w / h) uniform in log `ratio`.
    On a 1000x1000 frame with scale[1] * ratio[1] <= 1 every first draw fits, so no draw is rejected and
    these are the boxes' distributions (up to rounding to whole pixels: < 0.005 in either)."""
    count = 4000
    top, left, h, w = crop_boxes(count, 1000, 1000, scale, ratio).T
    assert np.all(top >= 0) and np.all(top + h <= 1000) and np.all(left >= 0) and np.all(left + w <= 1000)
    area, log_aspect = h * w / 1000 ** 2, np.log(w / h)
    low, high = math.log(ratio[0]), math.log(ratio[1])
    assert scale[0] - 0.005 <= area.min() and area.max() <= scale[1] + 0.005
    assert low - 0.005 <= log_aspect.min() and log_aspect.max() <= high + 0.005
    # 1.63 / sqrt(n): the 1% critical value (a fixed seed: the same draws every run)
    assert ks_distance_from_uniform(area, *scale) < 1.63 / math.sqrt(count)
    assert ks_distance_from_uniform(log_aspect, low, high) < 1.63 / math.sqrt(count)


def test_crop_boxes_on_a_video_frame_stay_in_scale_and_ratio():
    """Training's setting (scale 0.5-1, ratio 3/4-4/3) on a 4:3 frame: some draws are rejected (too wide
    or tall for the frame), every box is still inside, in range and spread over the aspect range."""
    top, left, h, w = crop_boxes(1000, 240, 320, (0.5, 1.0), (3 / 4, 4 / 3)).T
    assert np.all(top >= 0) and np.all(top + h <= 240) and np.all(left >= 0) and np.all(left + w <= 320)
    area, aspect = h * w / (240 * 320), w / h
    assert 0.5 - 0.01 <= area.min() and area.max() <= 1.0
    assert 3 / 4 * 0.99 <= aspect.min() and aspect.max() <= 4 / 3 * 1.01  # whole pixels: < 1% off
    assert aspect.min() < 0.8 and aspect.max() > 1.25 and area.min() < 0.55 and area.max() > 0.95


@pytest.mark.parametrize("height,width,ratio,box", [
    (100, 1000, (1.0, 1.0), (0, 450, 100, 100)),   # too wide for the ratio: full height, widest allowed
    (100, 1000, (2.0, 3.0), (0, 350, 100, 300)),
    (1000, 100, (0.5, 1.0), (400, 0, 200, 100)),   # too tall: full width, tallest allowed
])
def test_crop_box_after_ten_rejected_draws_is_the_largest_centred_box_in_the_ratio(height, width, ratio, box):
    """scale 0.9-1 of a 10:1 frame never fits a box in `ratio`: after 10 draws, the fallback box."""
    assert tuple(int(v) for v in crop_boxes(1, height, width, (0.9, 1.0), ratio)[0]) == box


def pil_bicubic(frames: torch.Tensor, height: int, width: int) -> np.ndarray:
    """uint8 [B, T, H, W, 3] -> float64 [B, T, 3, height, width]: each channel of each frame resized by
    PIL (Image.resize, BICUBIC: the filter CLIP's preprocessing uses), on float ("F") images so
    nothing is rounded to uint8, then clipped to 0..255 as an image's values are."""
    b, t = frames.shape[:2]
    out = np.zeros((b, t, 3, height, width))
    for i in range(b):
        for j in range(t):
            for c in range(3):
                image = Image.fromarray(frames[i, j, :, :, c].numpy().astype(np.float32))
                out[i, j, c] = np.asarray(image.resize((width, height), Image.Resampling.BICUBIC))
    return np.clip(out, 0, 255)


@pytest.mark.parametrize("height,width,resized", [
    (48, 64, (24, 32)),   # downscale by 2
    (40, 70, (24, 42)),   # by 0.6, the long side cropped by 9 px each side
    (64, 48, (32, 24)),   # portrait
    (16, 20, (24, 30)),   # upscale
])
def test_eval_is_pil_bicubic_resize_of_the_short_side_then_centre_crop(height, width, resized):
    """The evaluation transform against PIL's bicubic resize (an independent implementation of the
    filter); sizes chosen so the centre crop leaves equal margins on both sides."""
    frames = torch.randint(0, 256, (2, 3, height, width, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = VideoTransform(size=24, train=False)(frames).double().numpy()  # [2, 3, 3, 24, 24]
    margin_y, margin_x = (resized[0] - 24) // 2, (resized[1] - 24) // 2
    assert 2 * margin_y + 24 == resized[0] and 2 * margin_x + 24 == resized[1]
    expected = pil_bicubic(frames, *resized)[..., margin_y:margin_y + 24, margin_x:margin_x + 24] / 255
    mean, std = np.array(CLIP_MEAN).reshape(3, 1, 1), np.array(CLIP_STD).reshape(3, 1, 1)
    np.testing.assert_allclose(out, (expected - mean) / std, atol=1e-3, rtol=0)  # 1e-3: 0.07 grey levels


def test_eval_on_square_frames_of_the_model_size_only_normalises():
    frames = torch.randint(0, 256, (1, 2, 32, 32, 3), dtype=torch.uint8)
    out = VideoTransform(size=32, train=False)(frames, dtype=torch.float16)
    assert out.dtype == torch.float16
    mean, std = torch.tensor(CLIP_MEAN).view(1, 1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 1, 3, 1, 1)
    ref = (frames.permute(0, 1, 4, 2, 3).float() / 255 - mean) / std
    torch.testing.assert_close(out.float(), ref, atol=2e-3, rtol=1e-3)
