"""The config schema (vop/config/groups.py): every shipped composition passes it, an unknown or
misspelt key is refused naming the nearest valid key, and a `_target_` node's keys are the keyword
arguments of the callable it names."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR, SMALL_SYNTHETIC, assert_one_block, command_in_process, compose_cfg
from vop.commands.train import train
from vop.config.check import check_config
from vop.config.files import option_names
from vop.config.schema import Target, key, validate
from vop.errors import ConfigError

CONFIGS = Path(CONFIG_DIR)


def names(group: str) -> list[str]:
    return option_names(CONFIGS / group)


def test_every_command_method_dataset_model_and_decoder_composition_passes(tmp_path):
    for command, extra in (("train", []), ("eval", []), ("retrieve", ["query=x", "gallery=g"])):
        for method, data in product(names("method"), names("data")):
            check_config(compose_cfg(command, [f"method={method}", f"data={data}", *extra], tmp_path))
    for model, decoder in product(names("model"), names("decoder")):
        check_config(compose_cfg("train", [f"model={model}", f"decoder={decoder}"], tmp_path))


@pytest.mark.parametrize("script", ["bench", "bench_build", "build_frame_cache", "convert_openai", "export_hf", "param_table", "tools"])
def test_every_script_config_passes(script, tmp_path):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        check_config(compose(config_name=script))


@pytest.mark.parametrize("override, needle", [
    ("+trainer.epocs=3", "trainer.epocs is not a key of the trainer group; did you mean trainer.epochs?"),
    ("+data.hflp=true", "data.hflp is not a key of the data group; did you mean data.hflip?"),
    ("+decoder.num_thread=2", "did you mean decoder.num_threads?"),
    ("+method.tuner.splt=1", "method.tuner.splt is not a key of vop.methods."),
    ("+foo=1", "foo is not a key of this command's config"),
    ("logger=wandb logger.wandb.mode=on", "logger.wandb.mode=on is not allowed: expected one of"),
])
def test_unknown_keys_and_values_are_refused_naming_the_nearest_key(override, needle, tmp_path):
    with pytest.raises(ConfigError) as err:
        check_config(compose_cfg("train", ["model=clip_tiny", "data=synthetic", *override.split()], tmp_path))
    assert needle in str(err.value)


def test_a_tuner_key_is_checked_against_its_class_signature(tmp_path):
    # vop.yaml's tuner names VoP's constructor: its keys and their types are that signature's.
    cfg = compose_cfg("train", ["method=vop", "model=clip_tiny"], tmp_path)
    params = list(cfg.method.tuner.keys())
    assert "_target_" in params and len(params) > 3
    cfg.method.tuner.num_prompts = "many"  # an int parameter of VoP
    with pytest.raises(ConfigError, match=r"method.tuner.num_prompts=many is not allowed: expected an integer"):
        check_config(cfg)


def test_a_missing_key_is_named(tmp_path):
    cfg = compose_cfg("train", ["model=clip_tiny"], tmp_path)
    OmegaConf.set_struct(cfg, False)
    del cfg.trainer["epochs"]
    with pytest.raises(ConfigError, match=r"trainer.epochs is missing"):
        check_config(cfg)


@dataclass
class Tiny:
    size: int = key(low=1)
    ratio: float | int = key(low=0, high=1)
    mode: str = key(choices=("a", "b"))
    hint: str | None = key(optional=True)
    fn: Target = key(optional=True)


def test_validate_on_a_schema_of_its_own():
    validate(OmegaConf.create({"size": 2, "ratio": 0.5, "mode": "a"}), Tiny, "tiny")
    validate(OmegaConf.create({"size": 2, "ratio": 1, "mode": "b", "hint": None}), Tiny, "tiny")
    for node, needle in (
        ({"size": 0, "ratio": 0.5, "mode": "a"}, "tiny.size=0 is not allowed: expected an integer >= 1"),
        ({"size": 1, "ratio": 2, "mode": "a"}, "tiny.ratio=2 is not allowed: expected a finite number >= 0 and <= 1"),
        ({"size": 1, "ratio": 0.5, "mode": "c"}, "tiny.mode=c is not allowed: expected one of a, b"),
        ({"size": 1, "ratio": 0.5, "mode": "a", "sise": 1}, "tiny.sise is not a key of the tiny group; did you mean tiny.size?"),
        ({"size": 1, "ratio": 0.5, "mode": "a", "fn": {"_target_": "math.isclose", "rel": 1}},
         "tiny.fn.rel is not a key of math.isclose; did you mean tiny.fn.rel_tol?"),
        ({"size": 1, "ratio": 0.5, "mode": "a", "fn": {"_target_": "no_such_module.fn"}},
         "tiny.fn._target_=no_such_module.fn cannot be imported"),
        ({"ratio": 0.5, "mode": "a"}, "tiny.size is missing"),
    ):
        with pytest.raises(ConfigError) as err:
            validate(OmegaConf.create(node), Tiny, "tiny")
        assert needle in str(err.value), (needle, str(err.value))


# train.py's command in this interpreter: a user error inside Hydra's main in a real process is
# tests/commands/test_bad_inputs.py::test_cli_config_error_is_one_block_and_exit_2.
def test_a_misspelt_key_on_the_command_line_is_one_block_and_exit_2(tmp_path):
    proc = command_in_process(train, "train", tmp_path, "+trainer.epocs=3")
    assert_one_block(proc, "trainer.epocs is not a key of the trainer group; did you mean trainer.epochs?")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_method_key_the_tuner_refuses_is_one_block_and_exit_2(tmp_path):
    # Checks only the built model can make (20 is past the tiny tower's depth) raise ConfigError too.
    proc = command_in_process(train, "train", tmp_path, "method=vop_f", "method.tuner.inter_from=20",
                              "model=clip_tiny", "data=synthetic", *SMALL_SYNTHETIC)
    assert_one_block(proc, "method.tuner.inter_from=20 must be a layer index in [1, 1]")
