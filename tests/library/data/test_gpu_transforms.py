"""The batched crop/flip/resize/normalise matches a straightforward per-video reference."""
import torch
import torch.nn.functional as F

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


def test_crop_boxes_respect_scale_and_ratio():
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        top, left, h, w = sample_crop_box(240, 320, (0.5, 1.0), (3 / 4, 4 / 3), g)
        assert 0 <= top and top + h <= 240 and 0 <= left and left + w <= 320
        assert 0.45 <= h * w / (240 * 320) <= 1.0


def test_eval_is_resize_short_side_then_centre_crop():
    frames = torch.randint(0, 256, (2, 3, 48, 64, 3), dtype=torch.uint8)
    out = VideoTransform(size=24, train=False)(frames)
    x = frames.permute(0, 1, 4, 2, 3).reshape(2, 9, 48, 64).float()
    x = F.interpolate(x, size=(24, 32), mode="bicubic", antialias=True, align_corners=False).clamp(0, 255)
    x = x[..., :, 4:28].reshape(2, 3, 3, 24, 24) / 255
    mean, std = torch.tensor(CLIP_MEAN).view(1, 1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 1, 3, 1, 1)
    torch.testing.assert_close(out, (x - mean) / std)


def test_eval_on_square_frames_of_the_model_size_only_normalises():
    frames = torch.randint(0, 256, (1, 2, 32, 32, 3), dtype=torch.uint8)
    out = VideoTransform(size=32, train=False)(frames, dtype=torch.float16)
    assert out.dtype == torch.float16
    mean, std = torch.tensor(CLIP_MEAN).view(1, 1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 1, 3, 1, 1)
    ref = (frames.permute(0, 1, 4, 2, 3).float() / 255 - mean) / std
    torch.testing.assert_close(out.float(), ref, atol=2e-3, rtol=1e-3)
