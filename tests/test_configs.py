"""Every option of every config group composes; instantiable parts build; typos fail loudly."""
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR, compose_cfg

GROUPS = ["model", "method", "data", "decoder", "optim", "scheduler", "trainer", "logger", "paths", "experiment", "recipe"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in Path(CONFIG_DIR, group).glob("*.yaml"))


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
    assert instantiate(cfg.method.tuner).name == cfg.method.name


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


def test_method_data_files_name_an_existing_method(tmp_path):
    """configs/method_data/<method>_<data>.yaml: per-dataset recipe deltas picked up by train.yaml."""
    methods = options("method")
    for name in options("method_data"):
        method = max((m for m in methods if name.startswith(m + "_")), key=len, default=None)
        assert method, f"configs/method_data/{name}.yaml does not start with a method name"
        data = name[len(method) + 1:]
        if data in options("data"):
            cfg = compose_cfg("train", [f"method={method}", f"data={data}"], tmp_path)
            delta = OmegaConf.load(Path(CONFIG_DIR, "method_data", f"{name}.yaml"))
            assert all(cfg.method[k] == v for k, v in delta.method.items())


def test_method_data_is_applied(tmp_path):
    import shutil

    from hydra import compose, initialize_config_dir

    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, configs)
    (configs / "method_data" / "vop_synthetic.yaml").write_text("# @package _global_\nmethod:\n  lr_new: 0.123\n")
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        out = [f"paths.output_dir={tmp_path}"]
        assert compose("train", overrides=["method=vop", "data=synthetic", *out]).method.lr_new == 0.123
        assert compose("train", overrides=["method=vop", "data=msrvtt9k", *out]).method.lr_new == 3e-5


def test_method_caps_the_caption_length(tmp_path):
    from vop.engine.setup import max_text_len

    assert max_text_len(compose_cfg("train", ["method=vop", "data=msrvtt9k"], tmp_path)) == 69
    assert max_text_len(compose_cfg("train", ["method=bias", "data=msrvtt9k"], tmp_path)) == 77
    assert max_text_len(compose_cfg("train", ["method=vop", "data=synthetic"], tmp_path)) == 32


def test_num_threads_reaches_torch(tmp_path):
    import torch

    from vop.engine.setup import set_threads

    cfg = compose_cfg("train", ["experiment=demo"], tmp_path)
    assert cfg.trainer.num_threads == 1
    before = torch.get_num_threads()
    try:
        set_threads(cfg.trainer.num_threads)
        assert torch.get_num_threads() == 1
        set_threads(None)  # null keeps the current setting
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
