"""fit_frames: short side -> size (bicubic, antialiased, uint8), then torchvision-style centre crop."""
import numpy as np
import pytest
import torch

from vop.data.frames import fit_frames, resized_size


def _random_frames(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("h, w", [(240, 320), (320, 240), (720, 1280), (100, 150), (224, 224)])
def test_output_shape_and_dtype(h: int, w: int) -> None:
    out = fit_frames(_random_frames(3, h, w), 224)
    assert out.shape == (3, 224, 224, 3) and out.dtype == torch.uint8 and out.is_contiguous()


def test_resize_rule_truncates_the_long_side_like_torchvision() -> None:
    assert resized_size(240, 320, 224) == (224, 298)  # 224 * 320 / 240 = 298.67
    assert resized_size(320, 240, 224) == (298, 224)
    assert resized_size(100, 100, 224) == (224, 224)


def test_centre_crop_without_resize_is_an_exact_slice() -> None:
    x = _random_frames(2, 224, 300)  # short side already 224: no resampling at all
    assert torch.equal(fit_frames(x, 224), x[:, :, 38:262])
    portrait = _random_frames(2, 301, 224)  # (301 - 224) / 2 = 38.5 -> round() -> 38, as torchvision
    assert torch.equal(fit_frames(portrait, 224), portrait[:, 38:262])


def test_landscape_and_portrait_keep_the_centre() -> None:
    # A frame that is white only inside its central square; after fitting, the whole output is
    # that square (minus a resampling fringe at the border).
    for h, w in [(240, 480), (480, 240)]:
        x = torch.zeros(1, h, w, 3, dtype=torch.uint8)
        top, left = (h - min(h, w)) // 2, (w - min(h, w)) // 2
        x[:, top : top + min(h, w), left : left + min(h, w)] = 255
        out = fit_frames(x, 112)
        assert out[:, 2:-2, 2:-2].min() == 255


def test_constant_frames_stay_constant() -> None:
    x = torch.full((2, 90, 160, 3), 77, dtype=torch.uint8)
    assert torch.equal(fit_frames(x, 64), torch.full((2, 64, 64, 3), 77, dtype=torch.uint8))


def test_matches_pil_bicubic_resize_then_crop() -> None:
    """The reference CLIP pipeline: PIL bicubic resize (short side), then centre crop, by hand."""
    image = pytest.importorskip("PIL.Image")
    x = _random_frames(2, 150, 200, seed=3)
    x = torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2).float(), 3, 1, 1).round().to(torch.uint8)
    x = x.permute(0, 2, 3, 1).contiguous()  # smooth-ish natural-image stand-in, [2, 150, 200, 3]
    size = 96
    new_h, new_w = 96, 128  # 96 * 200 / 150
    top, left = 0, 16
    ref = np.stack([
        np.asarray(image.fromarray(f.numpy()).resize((new_w, new_h), image.BICUBIC))[top : top + size, left : left + size]
        for f in x
    ])
    out = fit_frames(x, size).numpy().astype(int)
    assert np.abs(out - ref).max() <= 1


def test_non_contiguous_input_and_upscaling() -> None:
    x = _random_frames(2, 80, 60).transpose(1, 2)  # [2, 60, 80, 3] view, not contiguous
    assert not x.is_contiguous()
    out = fit_frames(x, 100)
    assert out.shape == (2, 100, 100, 3)
    assert torch.equal(out, fit_frames(x.contiguous(), 100))


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="uint8"):
        fit_frames(torch.zeros(1, 10, 10, 3), 8)
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        fit_frames(torch.zeros(10, 10, 3, dtype=torch.uint8), 8)
    with pytest.raises(ValueError, match="size"):
        fit_frames(torch.zeros(1, 10, 10, 3, dtype=torch.uint8), 0)
