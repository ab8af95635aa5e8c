"""Every method config: exactly its parameters train, each gets a gradient, the rest stay bit-identical."""
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR
from vop.engine.optim import param_groups
from vop.losses import info_nce
from vop.methods.base import count_parameters

METHODS = sorted(p.stem for p in Path(CONFIG_DIR, "method").glob("*.yaml"))


def tiny_model():
    return instantiate(OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net)


def apply_method(name: str, **overrides):
    cfg = OmegaConf.load(f"{CONFIG_DIR}/method/{name}.yaml")
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
        loss = info_nce(model.encode_text(ids), model.encode_video(frames), model.logit_scale)
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
