"""W&B offline writes a run folder holding the logged scalars; online without a key goes offline."""
from pathlib import Path

import pytest

from tests.helpers import tiny_synthetic
from vop.engine.loggers import wandb_mode
from vop.engine.trainer import train


def test_wandb_offline_writes_a_run_with_the_scalars(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_synthetic("bias", tmp_path, ["logger=wandb", "trainer.max_steps_per_epoch=2", "trainer.log_every=1"])
    assert cfg.logger.wandb.mode == "offline"
    train(cfg)
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    records = list(runs[0].glob("run-*.wandb"))
    assert records, f"no .wandb file in {runs[0]}"
    data = records[0].read_bytes()
    for key in (b"train/loss", b"train/lr", b"train/videos_per_s", b"test/t2v_R@1", b"trainable_params"):
        assert key in data, key
    local = (Path(cfg.paths.output_dir) / "log.jsonl").read_text()
    assert "train/videos_per_s" in local and "test/t2v_R@1" in local and "trainable_params" in local


def test_online_without_api_key_logs_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    assert wandb_mode("online") == "offline"
    assert wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("online") == "online"
