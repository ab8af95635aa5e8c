"""Nothing lost to the disk: metrics.json is written first, then the checkpoint, then the similarity
matrix, each atomically, then the optional resume state; a full disk (a real small file system, tests/mounts.py) says what
was saved and what was not, with the metrics in the message; an output folder that cannot be written is refused at start."""
from __future__ import annotations

import errno
import json
import logging
import stat

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

import vop.engine.trainer as trainer_module
from tests.helpers import assert_one_block, main_in_process, tiny_synthetic
from tests.mounts import fill, tmpfs
from vop.commands.train import train
from vop.config.command_line import check_command_line
from vop.engine.rundir import OutputWriteError
from vop.errors import ConfigError
from vop.file_writes import save_tensors

RUN = ["method.lr=1e-3", "trainer.max_steps_per_epoch=2", "trainer.eval_every_epoch=false"]


def test_a_full_disk_at_the_checkpoint_keeps_metrics_json_and_says_so(tmp_path):
    """A real full disk: the run folder is a 1 MiB file system, the full model's checkpoint 14 MB
    (safetensors raises its own error type there, which a faked OSError would not show)."""
    run = tmp_path / "run"
    with tmpfs(run, 1024):
        with pytest.raises(OutputWriteError) as err:
            train(tiny_synthetic("full", tmp_path, RUN))
        message = str(err.value)
        assert f"could not write checkpoint.safetensors into {run}: the disk is full (ENOSPC)" in message
        assert "Saved: metrics.json; not saved: checkpoint.safetensors" in message
        metrics = json.loads((run / "metrics.json").read_text())
        assert f'"test/t2v_R@1": {round(metrics["test/t2v_R@1"], 2)}' in message
        assert not list(run.rglob("*.tmp")) and not (run / "checkpoint.safetensors").exists()  # no half file


def test_a_full_disk_at_metrics_json_prints_the_metrics(tmp_path, monkeypatch):
    """The disk fills up (for real) just before metrics.json is written."""
    real = trainer_module.save_metrics

    def fill_then_save(run_dir, metrics):
        fill(run_dir)
        return real(run_dir, metrics)

    monkeypatch.setattr(trainer_module, "save_metrics", fill_then_save)
    run = tmp_path / "run"
    with tmpfs(run, 1024):
        with pytest.raises(OutputWriteError, match=r"Saved: nothing; not saved: metrics.json, checkpoint.safetensors"
                                                   r", similarity.safetensors\. The run's metrics: \{.*\"test/t2v_R@1\": "):
            train(tiny_synthetic("bias", tmp_path, RUN))
        assert not list(run.glob(".metrics.json*")) and not (run / "metrics.json").exists()


def test_a_full_disk_at_the_resume_state_loses_nothing_of_the_result(tmp_path, caplog):
    """20 MiB: the full model's checkpoint (14 MB) fits, its resume state (weights and AdamW's two
    moments, 43 MB) does not."""
    run = tmp_path / "run"
    with tmpfs(run, 20 * 1024), caplog.at_level(logging.WARNING, logger="vop.engine.trainer"):
        result = train(tiny_synthetic("full", tmp_path, [*RUN, "trainer.epochs=2"]))
        assert json.loads((run / "metrics.json").read_text())["test/t2v_R@1"] == result["test/t2v_R@1"]
        assert (run / "checkpoint.safetensors").is_file() and not list(run.rglob("*.tmp"))
        assert not list((run / "resume").glob("*")) if (run / "resume").is_dir() else True
    assert caplog.text.count("could not write the resume state") == 2  # each epoch's; the run went on
    assert "the disk is full (ENOSPC)" in caplog.text


def test_a_safetensors_write_failure_is_the_os_error_it_is(tmp_path):
    """No mount needed: safetensors' own error for a folder that is not there."""
    with pytest.raises(SafetensorError):
        save_file({"x": torch.zeros(2)}, str(tmp_path / "missing" / "x.safetensors"))
    with pytest.raises(FileNotFoundError) as err:
        save_tensors({"x": torch.zeros(2)}, tmp_path / "missing" / "x.safetensors", {})
    assert err.value.errno == errno.ENOENT and err.value.filename == str(tmp_path / "missing" / "x.safetensors")


def test_safetensors_files_get_the_permissions_of_any_other_file(tmp_path):
    path = save_tensors({"x": torch.zeros(2)}, tmp_path / "x.safetensors", {})
    (tmp_path / "plain").write_text("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) & stat.S_IROTH  # umask 022: 0644 (safetensors alone: 0600)
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*tmp"))


def test_an_output_folder_under_a_file_is_one_block_before_hydra(tmp_path):
    (tmp_path / "file").write_text("x")  # the entry points' own checks, up to Hydra's main (not reached)
    proc = main_in_process("train.py", f"paths.log_dir={tmp_path / 'file' / 'logs'}")
    assert_one_block(proc, f"paths.log_dir={tmp_path / 'file' / 'logs'}: {tmp_path / 'file'} is a file")
    proc = main_in_process("eval.py", f"hydra.run.dir={tmp_path / 'file' / 'run'}")
    assert_one_block(proc, f"hydra.run.dir={tmp_path / 'file' / 'run'}: {tmp_path / 'file'} is a file")


def test_a_read_only_output_folder_is_refused_at_start(tmp_path):
    with tmpfs(tmp_path / "ro", 64, read_only=True) as folder:  # root may write anywhere else
        with pytest.raises(ConfigError, match=rf"paths.log_dir={folder / 'logs'}: cannot write into {folder} "
                                              r"\(Read-only file system\)"):
            check_command_line("train", [f"paths.log_dir={folder / 'logs'}"])
        check_command_line("retrieve", [f"paths.log_dir={folder / 'logs'}"])  # retrieve.py makes no run folder
