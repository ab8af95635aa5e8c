"""info_nce against a brute-force float64 reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from vop.losses import info_nce


def _unit(rows: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, dim, generator=gen), dim=-1)


def _reference(text: torch.Tensor, video: torch.Tensor, log_scale: float) -> float:
    """Per-row softmax written out in float64, both directions."""
    scale = math.exp(min(log_scale, math.log(100)))
    sims = (text.double() @ video.double().T).tolist()
    n = len(sims)
    t2v = 0.0
    v2t = 0.0
    for i in range(n):
        row = [scale * sims[i][j] for j in range(n)]
        col = [scale * sims[j][i] for j in range(n)]
        t2v -= row[i] - math.log(sum(math.exp(x) for x in row))
        v2t -= col[i] - math.log(sum(math.exp(x) for x in col))
    return (t2v + v2t) / (2 * n)


@pytest.mark.parametrize("log_scale", [0.0, math.log(1 / 0.07), 3.0])
def test_matches_bruteforce(log_scale: float) -> None:
    text, video = _unit(6, 16, 0), _unit(6, 16, 1)
    loss = info_nce(text, video, torch.tensor(log_scale))
    assert loss.item() == pytest.approx(_reference(text, video, log_scale), rel=1e-5)


def test_symmetric_in_text_and_video() -> None:
    text, video = _unit(5, 8, 2), _unit(5, 8, 3)
    scale = torch.tensor(2.0)
    assert info_nce(text, video, scale).item() == pytest.approx(info_nce(video, text, scale).item())


def test_scale_is_clamped() -> None:
    text, video = _unit(4, 8, 4), _unit(4, 8, 5)
    clamped = info_nce(text, video, torch.tensor(10.0))  # exp(10) > 100
    at_max = info_nce(text, video, torch.tensor(math.log(100)))
    assert clamped.item() == pytest.approx(at_max.item(), rel=1e-6)
    assert clamped.item() == pytest.approx(_reference(text, video, 10.0), rel=1e-5)


def test_gradient_reaches_logit_scale_below_clamp() -> None:
    text, video = _unit(4, 8, 6), _unit(4, 8, 7)
    logit_scale = torch.tensor(1.0, requires_grad=True)
    info_nce(text, video, logit_scale).backward()
    assert logit_scale.grad is not None and logit_scale.grad.abs().item() > 0
    # Finite difference check of that gradient.
    eps = 1e-3
    up = info_nce(text.double(), video.double(), torch.tensor(1.0 + eps, dtype=torch.double))
    down = info_nce(text.double(), video.double(), torch.tensor(1.0 - eps, dtype=torch.double))
    assert logit_scale.grad.item() == pytest.approx(((up - down) / (2 * eps)).item(), rel=1e-3)


def test_gradient_reaches_embeddings() -> None:
    text = _unit(4, 8, 8).requires_grad_()
    video = _unit(4, 8, 9).requires_grad_()
    info_nce(text, video, torch.tensor(2.0)).backward()
    assert text.grad.abs().sum() > 0 and video.grad.abs().sum() > 0


def test_perfect_alignment_gives_low_loss() -> None:
    emb = torch.eye(8)  # orthonormal: diagonal sim 1, off-diagonal 0
    loss = info_nce(emb, emb.clone(), torch.tensor(math.log(100)))
    random_loss = info_nce(_unit(8, 8, 10), _unit(8, 8, 11), torch.tensor(math.log(100)))
    assert loss.item() < 1e-3
    assert random_loss.item() > 1.0


def test_half_inputs_give_float32_loss() -> None:
    text, video = _unit(6, 16, 12), _unit(6, 16, 13)
    loss = info_nce(text.to(torch.bfloat16), video.to(torch.bfloat16), torch.tensor(math.log(100)))
    assert loss.dtype == torch.float32
    reference = _reference(text.to(torch.bfloat16).float(), video.to(torch.bfloat16).float(), 5.0)
    assert loss.item() == pytest.approx(reference, rel=1e-4)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        info_nce(_unit(4, 8, 0), _unit(3, 8, 1), torch.tensor(1.0))
