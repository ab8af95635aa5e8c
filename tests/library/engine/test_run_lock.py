"""One run, one writer: a run folder in use is refused naming its holder, a killed run's lock is
reclaimed with a WARNING, and a resume of a live run is refused; multirun jobs are unaffected
(torchrun ranks: tests/library/engine/test_distributed.py trains 2 ranks with the lock in force)."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO_ROOT, SMALL_SYNTHETIC, assert_one_block, cli, command_in_process, main_in_process
from vop.commands.train import train as train_command
from vop.run_lock import LOCK_FILE, RunFolderBusyError, RunLock, require_not_in_use

HOLD = """
import sys, time
from pathlib import Path
from vop.run_lock import RunLock
with RunLock(sys.argv[1]):
    Path(sys.argv[2]).write_text("held")
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/run (told to stop at the end)."""
    run, ready = tmp_path / "run", tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run), str(ready)], cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the holder did not start"
        time.sleep(0.05)
    yield run, proc
    proc.kill()
    proc.wait()


def test_a_second_lock_on_a_folder_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunFolderBusyError, match=rf"is in use by a run that is still going \(pid {os.getpid()} on "):
            with RunLock(tmp_path / "run"):
                pass
    with RunLock(tmp_path / "run"):  # released: free again
        pass
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_a_killed_runs_lock_is_reclaimed_with_a_warning(holder, caplog):
    run, proc = holder
    with pytest.raises(RunFolderBusyError, match=f"pid {proc.pid} on"):
        require_not_in_use(run, "resume=", "resume it once it has stopped")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == proc.pid  # left behind by the killed run
    require_not_in_use(run, "resume=")  # no live holder: nothing to refuse
    with caplog.at_level(logging.WARNING, logger="vop.run_lock"), RunLock(run):
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert f"reclaimed the lock of a run that ended without releasing it (pid {proc.pid} on" in caplog.text


def test_train_into_a_live_runs_folder_or_resuming_it_is_one_block(holder):
    run, proc = holder
    (run / "log.jsonl").write_text('{"step": 1}\n')
    before = sorted(p.name for p in run.iterdir())
    train = ["model=clip_tiny", "data=synthetic", *SMALL_SYNTHETIC]
    refused = main_in_process("train.py", *train, f"hydra.run.dir={run}")  # refused before Hydra's main
    assert_one_block(refused, f"hydra.run.dir {run} is in use by a run that is still going (pid {proc.pid}")
    assert sorted(p.name for p in run.iterdir()) == before  # Hydra wrote nothing into it
    resumed = command_in_process(train_command, "train", run.parent / "other", *train, f"resume={run}")
    assert_one_block(resumed, f"resume= {run} is in use by a run that is still going (pid {proc.pid}",
                     "resume it once it has stopped")
    assert (run / "log.jsonl").read_text() == '{"step": 1}\n'


def test_multirun_jobs_each_hold_their_own_folder(tmp_path):
    proc = cli("train.py", "-m", "method=zeroshot", "seed=1,2", "model=clip_tiny", "data=synthetic", *SMALL_SYNTHETIC,
               f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2 and all((job / "metrics.json").is_file() for job in jobs)
    assert not list((tmp_path / "sweep").rglob(LOCK_FILE))  # released when each job ended
