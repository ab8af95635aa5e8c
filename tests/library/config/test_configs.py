"""Every option of every config group composes; instantiable parts build; typos fail loudly."""
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from tests.helpers import CONFIG_DIR, compose_cfg
from vop.config.files import option_names
from vop.methods.base import TuningMethod

GROUPS = ["model", "method", "data", "decoder", "optim", "scheduler", "trainer", "logger", "paths", "experiment", "recipe"]


def options(group: str) -> list[str]:
    return option_names(Path(CONFIG_DIR, group))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes(group, option, tmp_path):
    for config_name in ("train", "eval"):
        try:
            cfg = compose_cfg(config_name, [f"{group}={option}"], tmp_path)
        except ConfigCompositionException:
            if config_name == "eval" and group in ("optim", "scheduler", "recipe"):
                continue  # eval.yaml has no optimizer, and recipes are training recipes
            raise
        assert cfg.task == config_name
        assert cfg.method.name and cfg.data.name and cfg.model.name


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"configs/{group} is empty"


def test_defaults_are_the_headline_command(tmp_path):
    cfg = compose_cfg("train", [], tmp_path)
    assert (cfg.method.name, cfg.data.name, cfg.model.name) == ("bias", "msrvtt9k", "clip_b32")


@pytest.mark.parametrize("method", options("method"))
def test_method_tuners_instantiate(method, tmp_path):
    cfg = compose_cfg("train", [f"method={method}"], tmp_path)
    assert isinstance(instantiate(cfg.method.tuner), TuningMethod)  # named by cfg.method.name alone


def test_decoder_optimizer_scheduler_instantiate(tmp_path):
    import torch

    cfg = compose_cfg("train", [], tmp_path)
    assert hasattr(instantiate(cfg.decoder), "decode")
    opt = instantiate(cfg.optim.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    sched = instantiate(cfg.scheduler.schedule)(opt, num_warmup_steps=1, num_training_steps=10)
    assert sched.get_last_lr()[0] == 0.0


def test_unknown_option_fails_with_hydra_message(tmp_path):
    with pytest.raises(ConfigCompositionException, match="msrvtt9"):
        compose_cfg("train", ["data=msrvtt9"], tmp_path)


def test_unknown_key_fails(tmp_path):
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        compose_cfg("train", ["trainer.no_such_key=1"], tmp_path)


def test_dataset_new_parameter_rate_reaches_the_methods(tmp_path):
    """`data.lr_new` (set by msrvtt7k and lsmdc) is the rate of new parameters (bias, proj: of their
    tensors); without it 3e-5; full and partial keep their own rates."""
    def rates(method: str, *extra: str) -> tuple[float, float]:
        cfg = compose_cfg("train", [f"method={method}", *extra], tmp_path)
        return cfg.method.lr, cfg.method.lr_new

    assert rates("vop", "data=msrvtt7k") == (1e-6, 1e-5) and rates("vop_fc", "data=lsmdc") == (1e-6, 1e-5)
    assert rates("bias", "data=lsmdc") == (1e-5, 1e-5) and rates("bias", "data=msrvtt9k") == (3e-5, 3e-5)
    assert rates("adapter_ffn", "data=synthetic", "+data.lr_new=0.123") == (1e-6, 0.123)
    assert rates("full", "data=msrvtt7k") == (1e-6, 3e-5) and rates("partial", "data=lsmdc") == (1e-5, 3e-5)


def test_method_caps_the_caption_length(tmp_path):
    from vop.engine.assembly import max_text_len

    assert max_text_len(compose_cfg("train", ["method=vop", "data=msrvtt9k"], tmp_path)) == 69
    assert max_text_len(compose_cfg("train", ["method=bias", "data=msrvtt9k"], tmp_path)) == 77
    assert max_text_len(compose_cfg("train", ["method=vop", "data=synthetic"], tmp_path)) == 32


def test_num_threads_reaches_torch(tmp_path):
    import torch

    from vop.engine.assembly import set_threads

    cfg = compose_cfg("train", ["experiment=demo"], tmp_path)
    assert cfg.trainer.num_threads == 1
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # not 1, the tests' own setting (tests/conftest.py): the call must change it
        set_threads(cfg.trainer.num_threads)
        assert torch.get_num_threads() == 1
        set_threads(None)  # null keeps the current setting
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
