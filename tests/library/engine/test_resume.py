"""Exact resume, SIGTERM, determinism, and the safety of resume checkpoints."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO_ROOT, SMALL_SYNTHETIC, tiny_synthetic
from safetensors import safe_open

from vop.commands.train import train
from vop.engine.checkpoint import CheckpointError, read_checkpoint
from vop.engine.resume import load_resume, resume_files

# 2 epochs x 3 steps, deterministic kernels; the stop at step 4 falls inside epoch 2.
RUN = ["method.lr=1e-3", "trainer.epochs=2", "trainer.max_steps_per_epoch=3", "trainer.log_every=1", "trainer.eval_every_epoch=false",
       "trainer.deterministic=true", "trainer.checkpoint.every_n_steps=1", "trainer.checkpoint.keep_last=2",
       "trainer.checkpoint.best_metric=t2v_MnR", "trainer.checkpoint.best_mode=min"]


def losses(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in lines if "train/loss" in r}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    cfg = tiny_synthetic("bias", tmp, RUN)
    return cfg, train(cfg)


def test_two_deterministic_runs_give_identical_metrics(uninterrupted, tmp_path):
    cfg, first = uninterrupted
    again = tiny_synthetic("bias", tmp_path, [*RUN, f"paths.data_dir={Path(cfg.paths.data_dir)}"])
    second = train(again)
    assert {k: v for k, v in second.items() if k.startswith("test/")} == \
        {k: v for k, v in first.items() if k.startswith("test/")}
    assert losses(Path(again.paths.output_dir)) == losses(Path(cfg.paths.output_dir))


def test_interrupted_then_resumed_run_ends_with_the_same_metrics(uninterrupted, tmp_path):
    cfg, expected = uninterrupted
    data = f"paths.data_dir={Path(cfg.paths.data_dir)}"
    first = tiny_synthetic("bias", tmp_path / "a", [*RUN, data, "trainer.stop_after_steps=4"])
    stopped = train(first)
    assert stopped == {"interrupted": True, "step": 4}
    run = Path(first.paths.output_dir)
    assert not (run / "metrics.json").exists()
    assert [p.name for p in resume_files(run)] == ["step_00000003.safetensors", "step_00000004.safetensors"]
    second = tiny_synthetic("bias", tmp_path / "b", [*RUN, data, f"resume={run}"])
    result = train(second)
    assert result["train/steps"] == 6
    for key, value in expected.items():
        if key.startswith("test/"):
            assert result[key] == value, key  # exactly, not approximately
    full_losses = losses(Path(cfg.paths.output_dir))
    assert losses(Path(second.paths.output_dir)) == {s: full_losses[s] for s in (5, 6)}


def test_best_checkpoint_is_the_best_epoch(uninterrupted):
    cfg, _ = uninterrupted
    run = Path(cfg.paths.output_dir)
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    per_epoch = [r["test/t2v_MnR"] for r in lines if "test/t2v_MnR" in r and "step" in r]
    assert len(per_epoch) == 2  # selection evaluates every epoch
    with safe_open(str(run / "best.safetensors"), framework="pt") as f:
        extra = json.loads(f.metadata()["extra"])
    assert extra["metric"] == "test/t2v_MnR" and extra["value"] == min(per_epoch)
    assert extra["epoch"] == 1 + per_epoch.index(min(per_epoch))
    read_checkpoint(run / "best.safetensors")  # loadable by eval.py ckpt=...


def test_resume_refuses_another_method_or_batch(uninterrupted, tmp_path):
    cfg, _ = uninterrupted
    run = cfg.paths.output_dir
    with pytest.raises(CheckpointError, match="method=bias"):
        train(tiny_synthetic("full", tmp_path / "m", [*RUN, f"resume={run}"]))
    with pytest.raises(CheckpointError, match="data.batch_size"):
        train(tiny_synthetic("bias", tmp_path / "b", [*RUN, f"resume={run}", "data.batch_size=4"]))


def test_pickled_resume_checkpoint_is_refused(tmp_path):
    evil = tmp_path / "resume" / "step_00000001.safetensors"
    evil.parent.mkdir()
    torch.save({"optimizer": object()}, evil)
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_resume(tmp_path)


def test_sigterm_saves_a_loadable_checkpoint_and_exits_cleanly(uninterrupted, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "train.py", "method=bias", "model=clip_tiny", "data=synthetic", *SMALL_SYNTHETIC,
           "trainer.epochs=50", "trainer.log_every=1", "trainer.progress=false",
           f"paths.data_dir={uninterrupted[0].paths.data_dir}", f"hydra.run.dir={run}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = run / "log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and sum("train/loss" in line for line in log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert "SIGTERM" in out
    tensors, state, saved, path = load_resume(run)
    assert state["step"] >= 2 and state["batch_in_epoch"] >= 1
    assert saved.method.name == "bias" and tensors
    assert not (run / "metrics.json").exists()



def _train_state(lr: float = 0.1):
    from vop.engine.train_state import TrainState
    from vop.engine.training_faults import NonFiniteGuard

    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([param], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    return param, TrainState(opt, sched, torch.amp.GradScaler("cpu", enabled=False), NonFiniteGuard(3))


def _through_the_file_format(state: dict) -> dict:
    """What a resume file gives back: tensors in safetensors, the rest as JSON (no pickle)."""
    from vop.engine.resume import pack, unpack

    tensors: dict = {}
    skeleton = pack(state, tensors, "state")
    return unpack(json.loads(json.dumps(skeleton)), tensors)


def test_train_state_round_trips_every_part_and_the_progress():
    from vop.engine.train_state import Progress

    param, state = _train_state()
    for _ in range(3):
        param.grad = torch.full((3,), 0.5)
        state.optimizer.step()
        state.scheduler.step()
    state.guard.check(float("nan"), 3)
    saved = _through_the_file_format(state.state_dict(Progress(
        epoch=1, batch_in_epoch=2, step=3, overflow_steps=1, best=12.5, best_test={"test/best_t2v_R@1": 40.0},
        world_size=2)))
    want_random = torch.rand(4)  # what the RNG gives right after the save

    _, fresh = _train_state(lr=0.5)
    progress = fresh.load_state_dict(saved)
    assert progress == Progress(1, 2, 3, 1, 12.5, {"test/best_t2v_R@1": 40.0}, 2)
    assert fresh.scheduler.state_dict()["last_epoch"] == 3 and fresh.guard.total == 1
    assert fresh.optimizer.param_groups[0]["lr"] == state.optimizer.param_groups[0]["lr"]
    assert torch.equal(fresh.optimizer.state_dict()["state"][0]["exp_avg"], state.optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(4), want_random)  # the RNG continues from the save


def test_train_state_reads_a_checkpoint_from_before_best_test():
    from vop.engine.train_state import Progress

    _, state = _train_state()
    saved = _through_the_file_format(state.state_dict(Progress(step=5)))
    del saved["best_test"]
    progress = state.load_state_dict(saved)
    assert progress.best_test == {} and progress.step == 5
