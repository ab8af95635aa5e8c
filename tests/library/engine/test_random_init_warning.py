"""A run from random weights with a rate meant for fine-tuning pretrained CLIP says so at start: one
WARNING naming the key; the demo's rates, or pretrained weights, say nothing."""
from __future__ import annotations

import logging

import pytest

from tests.helpers import compose_cfg
from vop.engine import assembly
from vop.engine.optim import is_random_init, param_groups, warn_if_too_slow


def warnings_for(tmp_path, caplog, overrides: list[str]) -> list[str]:
    cfg = compose_cfg("train", ["model=clip_tiny", "data=synthetic", *overrides], tmp_path)
    model, _, method, _ = assembly.build_model(cfg)
    groups = param_groups(model, method, cfg.method.lr, cfg.method.lr_new, cfg.optim.weight_decay)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vop.engine.optim"):
        warn_if_too_slow(cfg.model, groups)
    return [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("method, key", [("full", "method.lr=1e-06"), ("bias", "method.lr=3e-05"),
                                         ("vop_p", "method.lr_new=3e-05")])
def test_default_rates_on_a_random_model_warn_naming_the_key(tmp_path, caplog, method, key):
    [message] = warnings_for(tmp_path, caplog, [f"method={method}"])
    assert key in message and "model=clip_tiny starts from random weights" in message


def test_the_demo_rates_do_not_warn(tmp_path, caplog):
    assert warnings_for(tmp_path, caplog, ["method=full", "method.lr=1e-3", "method.lr_new=1e-3"]) == []


def test_pretrained_weights_are_not_random_init(tmp_path):
    assert not is_random_init(compose_cfg("train", ["model=clip_b32"], tmp_path).model)
    assert is_random_init(compose_cfg("train", ["model=clip_b32_random"], tmp_path).model)
    assert not is_random_init(compose_cfg("train", ["model=clip_tiny", "model.net.weights=full.safetensors"],
                                          tmp_path).model)
