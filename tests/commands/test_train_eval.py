"""End to end on the tiny model and small synthetic videos: train, checkpoint, eval reproduces."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import CONFIG_DIR, REPO_ROOT, SMALL_SYNTHETIC, command_in_process, compose_cfg, tiny_synthetic
from vop.commands.eval import evaluate_run
from vop.commands.train import train
from vop.config.files import option_names
from vop.engine.checkpoint import CheckpointError, read_checkpoint

METHODS = option_names(Path(CONFIG_DIR, "method"))
METRIC_KEYS = [f"test/{d}_{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")]


@pytest.fixture(scope="module")
def trained_bias(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bias")
    cfg = tiny_synthetic("bias", tmp, ["method.lr=1e-3"])
    return cfg, train(cfg)


@pytest.mark.parametrize("method", METHODS)
def test_one_epoch_per_method(method, tmp_path):
    cfg = tiny_synthetic(method, tmp_path, ["trainer.max_steps_per_epoch=2"])
    result = train(cfg)
    run = Path(cfg.paths.output_dir)
    saved = json.loads((run / "metrics.json").read_text())
    assert all(k in saved for k in METRIC_KEYS)
    assert saved["test/num_videos"] == 16 and saved["test/chance_R@1"] == pytest.approx(100 / 16)
    assert (run / "config.yaml").is_file() and (run / "log.jsonl").is_file()
    assert (run / "checkpoint.safetensors").is_file() == (result["trainable_params"] > 0)


def test_checkpoint_holds_only_trainable_tensors_and_config(trained_bias):
    cfg, result = trained_bias
    tensors, saved_cfg = read_checkpoint(cfg.paths.output_dir)
    assert all(name.endswith(".bias") for name in tensors)
    assert sum(t.numel() for t in tensors.values()) == result["trainable_params"]
    assert saved_cfg.method.name == "bias" and saved_cfg.model.name == "clip_tiny"


def test_eval_reproduces_the_runs_test_metrics(trained_bias, tmp_path):
    cfg, result = trained_bias
    eval_cfg = compose_cfg("eval", [f"ckpt={cfg.paths.output_dir}"], tmp_path)
    metrics = evaluate_run(eval_cfg, overrides=[f"ckpt={cfg.paths.output_dir}"])
    for key in METRIC_KEYS:
        assert metrics[key] == pytest.approx(result[key], abs=1e-6), key
    evaluated = json.loads((tmp_path / "run" / "metrics.json").read_text())
    trained = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    for key in ("trainable_params", "total_params", "test/num_videos", "test/num_captions", "test/num_queries",
                "test/chance_R@1", "train/num_videos", "train/num_captions", "test/excluded_videos", "comparable"):
        assert evaluated[key] == trained[key], key  # eval's metrics.json says what training's says
    assert evaluated["total_params"] > evaluated["trainable_params"] > 0


def test_eval_names_the_checkpoint_a_latest_link_pointed_at(trained_bias, tmp_path):
    cfg, _ = trained_bias
    (tmp_path / "latest").symlink_to(cfg.paths.output_dir, target_is_directory=True)
    overrides = [f"ckpt={tmp_path / 'latest'}"]
    evaluate_run(compose_cfg("eval", overrides, tmp_path), overrides=overrides)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["ckpt"] == str(Path(cfg.paths.output_dir).resolve())


def test_eval_refuses_a_checkpoint_of_another_method(trained_bias, tmp_path):
    cfg, _ = trained_bias
    overrides = [f"ckpt={cfg.paths.output_dir}", "method=full"]
    with pytest.raises(CheckpointError, match="method=bias"):
        evaluate_run(compose_cfg("eval", overrides, tmp_path), overrides=overrides)


def test_pickled_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "evil.safetensors"
    torch.save({"x": object()}, bad)
    with pytest.raises(CheckpointError, match="evil.safetensors"):
        read_checkpoint(bad)


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"})


def test_headline_command_without_data_names_the_missing_path(tmp_path):
    proc = command_in_process(train, "train", tmp_path, "method=bias", "data=msrvtt9k", f"paths.data_dir={tmp_path}")
    assert proc.returncode != 0
    assert str(tmp_path / "msrvtt") in proc.stderr and "docs/datasets.md" in proc.stderr


def test_cli_train_then_eval(tmp_path):
    run = tmp_path / "run"
    small = [o for o in SMALL_SYNTHETIC]
    proc = run_cli("train.py", "experiment=demo", "trainer.epochs=1", "trainer.progress=false", *small,
                   f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    proc = run_cli("eval.py", f"ckpt={run}", "trainer.progress=false", f"hydra.run.dir={tmp_path / 'eval'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test/t2v_R@1"] == pytest.approx(trained["test/t2v_R@1"])
    assert evaluated["test/v2t_MnR"] == pytest.approx(trained["test/v2t_MnR"])
