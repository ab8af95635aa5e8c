"""eval.py / retrieve.py ckpt=: which values come from the trained run and which from this command."""
from __future__ import annotations

from omegaconf import OmegaConf

from tests.helpers import compose_cfg
from vop.engine.checkpoint_config import keys_set_on_command_line, merge_checkpoint_config, option_chosen


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
