"""Which methods see frame order: the video embedding of a clip vs the same frames reversed / shuffled.

Every method encodes frames and takes the mean of the frame embeddings. Unless something tells
a frame its position, that mean is the same for any order of the frames: attention across frames
without positional information (VoP^C's generator, VoP^F's inter-frame layers) is permutation-
equivariant. Only position-specific prompts (VoP^P, VoP^{F+P}) and the optional temporal
embeddings (`method.tuner.temporal=true`) carry a frame-position signal. Each method's property
is stated here by construction and asserted on the tiny model with every trainable tensor
perturbed away from its initial value (so zero-initialised parts such as adapters take part).
"""
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR, method_config
from vop.config.files import option_names

# method -> True if its video embedding depends on the order of the frames (by construction).
SEES_ORDER = {
    "zeroshot": False, "full": False, "bias": False, "proj": False, "partial": False,
    "adapter_attn": False, "adapter_ffn": False,
    "vop": False,     # the same prompts for every frame
    "vop_p": True,    # one prompt set per frame position
    "vop_c": False,   # generator: attention over the frames' CLS tokens, no position
    "vop_f": False,   # inter-frame layers: every frame attends to all frames' CLS tokens, no position
    "vop_fp": True,   # position prompts in the inter-frame layers
    "vop_fc": False,  # generated prompts in the inter-frame layers, no position
    "dgl": True,      # latent=transformer: frame prompts per frame position (global prompts alone would not see it)
}
REVERSE, SHUFFLE = [3, 2, 1, 0], [2, 0, 3, 1]
# Measured on this tiny random model: reordering changes an order-blind method's embedding by
# <= 6e-8 (float summation order of the mean), an order-aware one's by 7e-5 .. 5e-4.
BLIND, AWARE = 1e-6, 2e-5
TEMPORAL = ["vop_c", "vop_f", "vop_fc"]  # where `temporal=true` applies (generator and/or inter-frame layers)


def build(name: str, **tuner) -> torch.nn.Module:
    cfg = method_config(name)
    cfg.tuner.update(tuner)
    if "frames" in cfg.tuner:
        cfg.tuner.frames = 4  # its default interpolates data.num_frames, absent from this lone file
    model = instantiate(OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net)
    torch.manual_seed(0)  # new parameters (prompts, generator) draw from the global RNG
    instantiate(cfg.tuner).apply(model)
    return model.eval()


def perturb(model: torch.nn.Module, std: float = 0.05, only: str = "") -> None:
    """Add seeded noise to the trainable tensors (whose names contain `only`), as training would move them."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and only in name:
                p.add_(torch.randn(p.shape, generator=gen) * std)


def video() -> torch.Tensor:
    return torch.randn(2, 4, 3, 224, 224, generator=torch.Generator().manual_seed(0))  # [B, T, 3, H, W]


@torch.no_grad()
def order_change(model: torch.nn.Module, order: list[int]) -> float:
    """Largest change of the (unit) video embedding when the frames are put in `order`."""
    frames = video()
    return (model.encode_video(frames) - model.encode_video(frames[:, order])).abs().max().item()


def test_every_method_config_states_its_order_property():
    assert sorted(SEES_ORDER) == option_names(Path(CONFIG_DIR, "method"))


@pytest.mark.parametrize("name", sorted(SEES_ORDER))
def test_order_property(name: str):
    model = build(name)
    perturb(model)
    for order in (REVERSE, SHUFFLE):
        change = order_change(model, order)
        if SEES_ORDER[name]:
            assert change > AWARE, f"{name} should see frame order but reordering changed it by {change:.2e}"
        else:
            assert change < BLIND, f"{name} has no frame-position signal but reordering changed it by {change:.2e}"


@pytest.mark.parametrize("name", TEMPORAL)
def test_temporal_embeddings_start_as_today_and_can_learn_order(name: str):
    today, temporal = build(name), build(name, temporal=True)
    frames = video()
    with torch.no_grad():  # zero-initialised: exactly today's output
        assert torch.equal(today.encode_video(frames), temporal.encode_video(frames))
    # One backward pass: the zero vectors get a gradient, so training can move them.
    temporal.encode_video(frames).sum().backward()
    grad = temporal.hooks.temporal.embedding.grad
    assert grad is not None and grad.abs().max() > 0
    perturb(temporal, std=0.5, only="temporal")  # moved off zero: frame order now changes the embedding
    for order in (REVERSE, SHUFFLE):
        assert order_change(temporal, order) > AWARE


def test_temporal_needs_frames_that_exchange_information():
    with pytest.raises(ValueError, match="temporal=true needs"):
        build("vop_p", temporal=True)


def test_temporal_covers_method_frames():
    model = build("vop_f", temporal=True)
    with pytest.raises(ValueError, match="method.tuner.frames"):
        model.encode_video(torch.randn(1, 5, 3, 224, 224))
