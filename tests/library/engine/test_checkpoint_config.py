"""eval.py / retrieve.py ckpt=: which values come from the trained run and which from this command; no
key given on the command line is silently ignored."""
from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from tests.helpers import compose_cfg
from vop.config.check import check_config
from vop.config.command_line import over_checkpoint
from vop.config.stored import stored_config
from vop.engine.checkpoint_config import keys_set_on_command_line, merge_checkpoint_config, option_chosen
from vop.errors import ConfigError


def trained(tmp, **data) -> OmegaConf:
    """A stored config as read_checkpoint returns it: a custom data set trained on another machine."""
    cfg = compose_cfg("train", ["method=bias", "data=synthetic", "model=clip_tiny"], tmp)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    cfg.data.name, cfg.data.num_frames, cfg.data.num_workers = "my_clips", 6, 32
    for key, value in data.items():
        cfg.data[key] = value
    return cfg


def test_a_data_key_on_the_command_line_goes_over_the_trained_runs_data(tmp_path) -> None:
    overrides = ["data.eval_batch_size=3"]
    cfg = compose_cfg("eval", ["method=bias", "model=clip_tiny", *overrides], tmp_path)
    merged = merge_checkpoint_config(cfg, trained(tmp_path), overrides, tmp_path / "trainable.safetensors")
    assert merged.data.name == "my_clips" and merged.data.num_frames == 6  # the run's
    assert merged.data.eval_batch_size == 3  # the command line's


def test_a_data_option_on_the_command_line_replaces_the_trained_runs_data(tmp_path) -> None:
    overrides = ["data=msrvtt9k"]
    cfg = compose_cfg("eval", ["method=bias", "model=clip_tiny", *overrides], tmp_path)
    merged = merge_checkpoint_config(cfg, trained(tmp_path), overrides, tmp_path / "trainable.safetensors")
    assert merged.data.name == "msrvtt9k" and merged.data.num_frames == 12


def test_workers_are_this_machines_not_the_trained_runs(tmp_path) -> None:
    cfg = compose_cfg("eval", ["method=bias", "model=clip_tiny"], tmp_path)
    merged = merge_checkpoint_config(cfg, trained(tmp_path), [], tmp_path / "trainable.safetensors")
    assert merged.data.num_workers == cfg.data.num_workers != 32
    cfg = compose_cfg("eval", ["method=bias", "model=clip_tiny", "data.num_workers=0"], tmp_path)
    merged = merge_checkpoint_config(cfg, trained(tmp_path), ["data.num_workers=0"], tmp_path / "x.safetensors")
    assert merged.data.num_workers == 0


def test_only_an_option_override_chooses_the_group() -> None:
    assert option_chosen(["data=didemo", "data.num_frames=4"], "data")
    assert not option_chosen(["data.num_workers=0", "+database=x"], "data")
    assert keys_set_on_command_line(["data.num_workers=0", "+data.x.y=1", "database=x"], "data") == \
        ["data.num_workers", "data.x.y"]


def custom_run(tmp, **data) -> dict:
    """What a data=custom run stores: its resolved config (held-out draw: test_fraction 0.2, seed 0)."""
    cfg = compose_cfg("train", ["method=bias", "model=clip_tiny", "data=custom", f"data.videos={tmp / 'my_clips'}",
                                f"data.captions={tmp / 'my_clips.json'}", *(f"data.{k}={v}" for k, v in data.items())],
                      tmp)
    return OmegaConf.to_container(cfg, resolve=True)


def eval_over(tmp, stored: dict, argv: list[str]):
    """eval.py ckpt=<run> <argv> as the entry point composes and merges it."""
    overrides = over_checkpoint([f"ckpt={tmp / 'run'}", *argv])[1:]
    cfg = compose_cfg("eval", overrides, tmp)
    saved = stored_config(stored, "the test checkpoint")
    merged = merge_checkpoint_config(cfg, saved, overrides, tmp / "checkpoint.safetensors")
    check_config(merged, overrides)
    return merged


@pytest.mark.parametrize("argv", [["data.test_fraction=0.3", "data.split_seed=1"],
                                  ["+data.test_fraction=0.3", "+data.split_seed=1"]])
def test_a_custom_runs_split_keys_go_over_it_with_or_without_plus(tmp_path, argv) -> None:
    """The default data group (msrvtt9k) has no test_fraction: Hydra used to refuse the key, and with
    `+` the trained run's stored (resolved) splits.test_fraction silently stayed 0.2."""
    merged = eval_over(tmp_path, custom_run(tmp_path), argv)
    assert merged.data.name == "my_clips"
    assert (merged.data.splits.test_fraction, merged.data.splits.seed) == (0.3, 1)  # what the parser is given


def test_a_derived_value_the_run_set_by_hand_stays(tmp_path) -> None:
    stored = custom_run(tmp_path)
    stored["data"]["splits"]["test_fraction"] = 0.5  # `data.splits.test_fraction=0.5` at training time
    merged = eval_over(tmp_path, stored, [])
    assert (merged.data.test_fraction, merged.data.splits.test_fraction) == (0.2, 0.5)


def test_a_root_given_on_the_command_line_reaches_the_parser_and_the_manifest(tmp_path) -> None:
    stored = OmegaConf.to_container(compose_cfg("train", ["method=bias", "model=clip_tiny", "data=msrvtt9k",
                                                          "paths.data_dir=/their/machine"], tmp_path), resolve=True)
    merged = eval_over(tmp_path, stored, [])
    assert merged.data.root == merged.data.splits.root == "/their/machine/msrvtt"  # theirs, as stored
    merged = eval_over(tmp_path, stored, ["data.root=/mine/msrvtt"])
    assert merged.data.splits.root == "/mine/msrvtt" and merged.data.manifest == "/mine/msrvtt/manifest.jsonl"


@pytest.mark.parametrize("argv, needle", [
    (["data.test_fraction=0.3"], "data.test_fraction: the trained run's data group (msrvtt9k"),
    (["+data.split_seed=1"], "data.split_seed: the trained run's data group (msrvtt9k"),
    (["data.num_frame=8"], "did you mean data.num_frames?"),
])
def test_a_key_the_trained_run_does_not_have_is_refused(tmp_path, argv, needle) -> None:
    stored = OmegaConf.to_container(compose_cfg("train", ["method=bias", "model=clip_tiny", "data=msrvtt9k"],
                                                tmp_path), resolve=True)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        eval_over(tmp_path, stored, argv)


@pytest.mark.parametrize("argv", [["data=msrvtt9k", "+data.test_fraction=0.3"], ["+data.split_seed=2"],
                                  ["method=full", "data=msrvtt7k", "data.lr_new=1e-4"]])
def test_a_key_nothing_in_the_run_reads_is_refused(tmp_path, argv) -> None:
    """Without a checkpoint: a key only interpolations read, named by none in this run's config."""
    cfg = compose_cfg("eval", ["method=bias", "model=clip_tiny", *argv], tmp_path)
    key = argv[-1].lstrip("+").split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(f"{key}: nothing in this run reads it")):
        check_config(cfg, argv)
    check_config(cfg, [])  # the same config is fine when nobody asked for the key


def test_keys_of_a_run_become_forced_overrides_only_with_a_checkpoint() -> None:
    assert over_checkpoint(["data.test_fraction=0.3"]) == ["data.test_fraction=0.3"]
    assert over_checkpoint(["ckpt=null", "+data.x=1"]) == ["ckpt=null", "+data.x=1"]
    assert over_checkpoint(["ckpt=run", "+data.x=1", "data.y=2", "method.lr=1", "trainer.epochs=2", "~data.z"]) == \
        ["ckpt=run", "++data.x=1", "++data.y=2", "++method.lr=1", "trainer.epochs=2", "~data.z"]
    assert over_checkpoint(["ckpt=run", "data=didemo", "data.y=2"]) == ["ckpt=run", "data=didemo", "data.y=2"]
