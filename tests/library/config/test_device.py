"""`trainer.device` and `trainer.precision`: one set of rules (vop/config/device.py), applied by the
config check before a run and where the names become a torch device and dtype."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.helpers import compose_cfg
from vop.config.check import check_config
from vop.config.device import DTYPES, PRECISIONS
from vop.config.groups import GROUPS
from vop.engine.precision import resolve_device, resolve_precision
from vop.errors import ConfigError


def test_the_schema_and_the_resolver_know_the_same_precisions() -> None:
    rule = next(f.metadata["rule"] for f in dataclasses.fields(GROUPS["trainer"]) if f.name == "precision")
    assert rule.choices == PRECISIONS == ("auto", *DTYPES)
    assert {resolve_precision(name, torch.device("cpu")) for name in PRECISIONS} == set(DTYPES.values())


@pytest.mark.parametrize("key, value", [("device", "gpu"), ("device", "cuda:x"), ("device", "mps"),
                                        ("precision", "fp8")])
def test_a_name_the_check_refuses_the_resolver_refuses_alike(tmp_path, key, value) -> None:
    cfg = compose_cfg("train", ["model=clip_tiny", "data=synthetic", f"trainer.{key}={value}"], tmp_path)
    with pytest.raises(ConfigError) as checked:
        check_config(cfg)
    with pytest.raises(ConfigError) as resolved:
        resolve_device(value) if key == "device" else resolve_precision(value, torch.device("cpu"))
    assert str(checked.value) == str(resolved.value)
    assert str(resolved.value).startswith(f"trainer.{key}={value} is not allowed: expected one of auto, ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_cuda_without_cuda_is_refused_where_the_device_is_made() -> None:
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"trainer.device={name} but CUDA is not available"):
            resolve_device(name)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
