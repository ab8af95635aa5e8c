"""Every method config: exactly its parameters train, each gets a gradient, the rest stay bit-identical."""
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR, method_config
from vop.config.files import option_names
from vop.engine.optim import param_groups
from vop.losses import info_nce, info_nce_scores
from vop.methods.base import count_parameters

METHODS = option_names(Path(CONFIG_DIR, "method"))


def tiny_model():
    return instantiate(OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net)


def apply_method(name: str, **overrides):
    cfg = method_config(name)
    cfg.tuner.update(overrides)
    model, method = tiny_model(), instantiate(cfg.tuner)
    return model, method, method.apply(model)


def fake_batch(b: int = 4, t: int = 3):
    torch.manual_seed(0)
    ids = torch.randint(300, 40000, (b, 12))
    ids[:, 0], ids[:, -1] = 49406, 49407
    return torch.randn(b, t, 3, 224, 224), ids


def train_steps(model, method, steps: int = 2):
    groups = param_groups(model, method, lr=1e-3, lr_new=1e-3, weight_decay=0.1)
    opt = torch.optim.AdamW(groups)
    frames, ids = fake_batch()
    for _ in range(steps):
        # As the trainer: a text-conditioned pooling (X-Pool) scores each caption against each video's frames.
        text, video = model.encode_text(ids), model.encode_video_items(frames)
        loss = (info_nce_scores(model.similarity(text, video), model.logit_scale) if video.ndim == 3
                else info_nce(text, video, model.logit_scale))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        opt.step()
        opt.zero_grad()
    return grads


@pytest.mark.parametrize("name", METHODS)
def test_exactly_the_method_parameters_change(name):
    model, method, count = apply_method(name)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert count.trainable == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    if not trainable:
        assert name == "zeroshot"
        return
    grads = train_steps(model, method)
    assert set(grads) == trainable, "gradients must reach exactly the trainable tensors"
    no_signal = [n for n, g in grads.items() if not (torch.isfinite(g).all() and g.abs().sum() > 0)]
    assert not no_signal, f"trainable tensors without gradient: {no_signal[:5]}"
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable


def test_bias_trains_every_bias_and_nothing_else():
    model, _, count = apply_method("bias")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    assert any("layer_norm" in n for n in trainable)


def test_bias_without_layernorm_keeps_norms_frozen():
    model, _, _ = apply_method("bias", layernorm=False)
    modules = dict(model.named_modules())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    linear_biases = {f"{m}.bias" for m, mod in modules.items() if isinstance(mod, torch.nn.Linear)
                     and mod.bias is not None}
    assert trainable == linear_biases


def test_full_and_zeroshot_counts():
    _, _, full = apply_method("full")
    _, _, zero = apply_method("zeroshot")
    assert full.trainable == full.total == count_parameters(tiny_model()).total
    assert zero.trainable == 0
    assert "100.00%" in str(full)


def test_pattern_that_matches_nothing_is_an_error():
    from vop.methods.base import TuningMethod

    class Broken(TuningMethod):
        name = "broken"

        def patterns(self):
            return [r"no_such_tensor$"]

    with pytest.raises(ValueError, match="no_such_tensor"):
        Broken().apply(tiny_model())


def test_weight_decay_skips_one_dimensional_tensors():
    model, method, _ = apply_method("full")
    groups = {g["name"]: g for g in param_groups(model, method, 1e-6, 1e-5, 0.2)}
    assert groups["pretrained"]["weight_decay"] == 0.2
    assert all(p.ndim > 1 for p in groups["pretrained"]["params"])
    assert groups["pretrained_no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim <= 1 for p in groups["pretrained_no_decay"]["params"])


@pytest.mark.parametrize("name", METHODS)
def test_embedding_shapes(name):
    model, _, _ = apply_method(name)
    frames, ids = fake_batch(b=2, t=3)
    with torch.no_grad():
        assert model.encode_video(frames).shape == (2, 64)
        assert model.encode_text(ids).shape == (2, 64)


def trainable_names(name: str, **overrides) -> set[str]:
    model, _, _ = apply_method(name, **overrides)
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_proj_trains_the_two_projections():
    assert trainable_names("proj") == {"clip.visual_projection.weight", "clip.text_projection.weight"}


def test_partial_trains_the_last_k_blocks_of_each_tower():
    names = trainable_names("partial", vision_layers=2, text_layers=1)
    blocks = {n.split(".layers.")[0].split(".")[1] + n.split(".layers.")[1].split(".")[0] for n in names}
    assert blocks == {"vision_model0", "vision_model1", "text_model1"}
    with pytest.raises(ValueError, match="vision_layers=3"):
        apply_method("partial", vision_layers=3)


def test_run_block_is_the_hf_layer():
    from vop.models.hooks import causal_mask, run_block

    layer = tiny_model().clip.text_model.encoder.layers[0]
    x = torch.randn(2, 7, 64)
    torch.testing.assert_close(run_block(layer, x, causal_mask(x)), layer(x, causal_mask(x)), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["adapter_attn", "adapter_ffn"])
def test_adapters_start_as_clip_and_sit_in_every_block(name):
    model, _, _ = apply_method(name)
    plain = tiny_model()
    frames, ids = fake_batch(b=2, t=2)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(frames), plain.encode_video(frames))
        torch.testing.assert_close(model.encode_text(ids), plain.encode_text(ids))
    names = trainable_names(name, bottleneck=5)
    assert all(n.startswith(("hooks.vision.", "hooks.text.")) for n in names)
    assert len(names) == 4 * 2 * 2  # down/up weight+bias, 2 blocks, 2 towers
    assert model.hooks.vision[0].down.out_features == 82


def test_adapter_position_changes_the_computation():
    (a, _, _), (f, _, _) = apply_method("adapter_attn"), apply_method("adapter_ffn")
    for model in (a, f):
        with torch.no_grad():
            for adapter in model.hooks.vision:
                torch.nn.init.normal_(adapter.up.weight)
    frames, _ = fake_batch(b=1, t=2)
    with torch.no_grad():
        assert not torch.allclose(a.encode_video(frames), f.encode_video(frames))
