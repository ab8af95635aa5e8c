"""DDP on the CPU (gloo): two processes with half batches == one process with the global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import BatchSampler

from tests.ddp_worker import TwoTowers, global_batch_grads, grad_worker, nonfinite_worker
from tests.helpers import REPO_ROOT, SMALL_SYNTHETIC, tiny_synthetic
from vop.commands.train import train
from vop.data.shard_sampler import ShardedSampler
from vop.engine.checkpoint import read_checkpoint
from vop.metrics.similarity_file import FILENAME as SIMILARITY, read_similarity

RUN = ["trainer.epochs=1", "trainer.max_steps_per_epoch=4", "trainer.log_every=1", "trainer.progress=false"]


def losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in lines if "train/loss" in r]


@pytest.mark.parametrize("world", [2, 3])
def test_rank_batches_union_is_the_single_process_batch(world):
    data, batch = list(range(50)), 6
    single = list(BatchSampler(ShardedSampler(data, 1, 0, seed=3, drop_last=True), batch, drop_last=True))
    shards = [list(BatchSampler(ShardedSampler(data, world, r, seed=3, drop_last=True), batch // world,
                                drop_last=True)) for r in range(world)]
    assert all(len(s) == len(single) for s in shards)
    for k, global_batch in enumerate(single):
        assert sorted(sum((s[k] for s in shards), [])) == sorted(global_batch)


def test_sampler_resumes_mid_epoch():
    sampler = ShardedSampler(list(range(20)), 2, 1, seed=0)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_epoch(4, start=3)
    assert list(sampler) == full[3:] and len(sampler) == len(full) - 3
    sampler.set_epoch(5)
    assert list(sampler) != full


# xpool: frames gathered, each caption pools each video of the global batch, and the evaluation gathers
# every rank's frames; its head's dropout off (each rank would draw its own dropout masks).
@pytest.mark.parametrize("method,extra", [("full", []), ("xpool", ["method.tuner.dropout=0"])])
def test_torchrun_two_processes_match_one_process(tmp_path, method, extra):
    """Same losses, metrics and weights within float tolerance (random frames and crops included:
    they are seeded per item, so each video is sampled and cropped alike on any rank)."""
    single_cfg = tiny_synthetic(method, tmp_path / "one", RUN + extra)
    single = train(single_cfg)
    run = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
           f"method={method}", "model=clip_tiny", "data=synthetic", *SMALL_SYNTHETIC, *RUN,
           *extra, f"paths.data_dir={tmp_path / 'one' / 'data'}", f"hydra.run.dir={run}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(2 processes)" in proc.stdout + proc.stderr
    double = json.loads((run / "metrics.json").read_text())
    one_run = Path(single_cfg.paths.output_dir)
    assert losses(run) == pytest.approx(losses(one_run), rel=1e-5)
    assert len(losses(run)) == 4
    for key, value in single.items():
        if key.startswith("test/"):
            assert double[key] == pytest.approx(value, abs=1e-6), key
    saved_one, saved_two = read_similarity(one_run / SIMILARITY), read_similarity(run / SIMILARITY)
    assert saved_two.scores.shape == saved_one.scores.shape == (16, 16)  # every rank's captions and videos
    torch.testing.assert_close(saved_two.scores, saved_one.scores, rtol=1e-4, atol=1e-5)
    assert torch.equal(saved_two.text_video, saved_one.text_video) and saved_two.videos == saved_one.videos
    one, _ = read_checkpoint(one_run)
    two, _ = read_checkpoint(run)
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5)


def test_gathered_loss_gives_the_single_process_gradient(tmp_path):
    """DDP averages gradients over ranks and the gather's backward sums them: the product must be
    the plain gradient of the global-batch loss (Adam would hide a constant factor, so check grads)."""
    torch.manual_seed(0)
    model, text, video = TwoTowers(), torch.randn(8, 6), torch.randn(8, 5)
    expected = global_batch_grads(model, text, video)
    mp.spawn(grad_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name, grad in expected.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-5, atol=1e-6, msg=f"rank {rank} {name}")


def test_a_nan_on_one_rank_stops_every_rank_with_the_same_message(tmp_path):
    context = mp.spawn(nonfinite_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=False)
    for _ in range(120):  # a rank left waiting in a collective would hang: fail instead, after 60 s
        if context.join(timeout=0.5):
            break
    else:
        for process in context.processes:
            process.kill()
        pytest.fail("the ranks did not finish: one is waiting for the other")
    messages = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    assert messages[0] == messages[1]
    assert messages[0].startswith("evaluating the test split: 1 of 6 video embeddings hold NaN or inf values")
