"""Nothing lost to the disk: metrics.json is written first, then the checkpoint, each atomically,
then the optional resume state; a full disk (a faked ENOSPC) says what was saved and what was not,
with the metrics in the message; an output folder that cannot be written is refused at start."""
from __future__ import annotations

import errno
import json
import logging
import tempfile

import pytest

import vop.engine.checkpoint as checkpoint_module
import vop.engine.resume as resume_module
import vop.engine.rundir as rundir_module
from tests.helpers import assert_one_block, main_in_process, tiny_synthetic
from vop.commands.train import train
from vop.config.command_line import check_command_line
from vop.engine.rundir import OutputWriteError
from vop.errors import ConfigError

RUN = ["method.lr=1e-3", "trainer.max_steps_per_epoch=2", "trainer.eval_every_epoch=false"]


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_the_checkpoint_keeps_metrics_json_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "save_file", disk_full)
    cfg = tiny_synthetic("bias", tmp_path, RUN)
    with pytest.raises(OutputWriteError) as err:
        train(cfg)
    message = str(err.value)
    assert "could not write checkpoint.safetensors" in message and "the disk is full" in message
    assert "Saved: metrics.json; not saved: checkpoint.safetensors" in message
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert f'"test/t2v_R@1": {round(metrics["test/t2v_R@1"], 2)}' in message
    assert not list(run.glob("*.tmp")) and not (run / "checkpoint.safetensors").exists()  # no half file


def test_a_full_disk_at_metrics_json_prints_the_metrics(tmp_path, monkeypatch):
    real = rundir_module.Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(".metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(rundir_module.Path, "write_text", write_text)
    with pytest.raises(OutputWriteError, match=r"Saved: nothing; not saved: metrics.json, checkpoint.safetensors\. "
                                               r"The run's metrics: \{.*\"test/t2v_R@1\": "):
        train(tiny_synthetic("bias", tmp_path, RUN))
    assert not list((tmp_path / "run").glob(".metrics.json*"))


def test_a_full_disk_at_the_resume_state_loses_nothing_of_the_result(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(resume_module, "save_file", disk_full)
    with caplog.at_level(logging.WARNING, logger="vop.engine.trainer"):
        result = train(tiny_synthetic("bias", tmp_path, [*RUN, "trainer.epochs=2"]))
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text())["test/t2v_R@1"] == result["test/t2v_R@1"]
    assert (run / "checkpoint.safetensors").is_file() and not list(run.rglob("*.tmp"))
    assert caplog.text.count("could not write the resume state") == 2  # each epoch's; the run went on


def test_an_output_folder_under_a_file_is_one_block_before_hydra(tmp_path):
    (tmp_path / "file").write_text("x")  # the entry points' own checks, up to Hydra's main (not reached)
    proc = main_in_process("train.py", f"paths.log_dir={tmp_path / 'file' / 'logs'}")
    assert_one_block(proc, f"paths.log_dir={tmp_path / 'file' / 'logs'}: {tmp_path / 'file'} is a file")
    proc = main_in_process("eval.py", f"hydra.run.dir={tmp_path / 'file' / 'run'}")
    assert_one_block(proc, f"hydra.run.dir={tmp_path / 'file' / 'run'}: {tmp_path / 'file'} is a file")


def test_a_read_only_output_folder_is_refused_at_start(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # root may write anywhere: fake the mount
    with pytest.raises(ConfigError, match=rf"paths.log_dir={tmp_path / 'logs'}: cannot write into {tmp_path} "
                                          r"\(Read-only file system\)"):
        check_command_line("train", [f"paths.log_dir={tmp_path / 'logs'}"])
    check_command_line("retrieve", [f"paths.log_dir={tmp_path / 'logs'}"])  # retrieve.py makes no run folder
