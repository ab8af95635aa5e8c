"""Videos that fail to decode on the device (NVDEC, nvJPEG: in the main process, after collation) are
replaced, counted and logged exactly as videos that fail in a CPU data worker: same draws, same
records, same counters (a fake GPU decoder that fails on chosen videos; vop/data/bad_videos.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from tests.fake_gpu import FailingCpuDecoder, FakeGpuDecoder
from tests.helpers import tiny_synthetic
from vop.commands.train import train
from vop.data.bad_videos import BadVideoCounter
from vop.data.dataset import Collate, VideoTextDataset, make_loader
from vop.data.decoders.base import VideoDecodeError
from vop.data.sample_videos import write_video
from vop.data.split import Split
from vop.engine.device_feed import DeviceFeed

BAD = ["v1.mp4", "v4.mp4", "v6.mp4"]


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Split:
    tmp = tmp_path_factory.mktemp("videos")
    paths = [write_video(tmp / f"v{i}.mp4", 8, 64, 48, gop=4) for i in range(10)]
    return Split("train", [f"v{i}" for i in range(10)], paths, [f"caption {i}" for i in range(10)], list(range(10)))


def batches(split: Split, decoder, prefetch: bool = False, skip_bad: bool = True, max_attempts: int = 20):
    dataset = VideoTextDataset(split, decoder, 4, "rand", 32, skip_bad=skip_bad, seed=3, max_attempts=max_attempts)
    loader = make_loader(dataset, 5, shuffle=False, num_workers=0, collate=Collate(), seed=0)
    return list(DeviceFeed(loader, torch.device("cpu"), prefetch=prefetch))


@pytest.mark.parametrize("prefetch", [False, True])
def test_gpu_failures_are_replaced_like_worker_failures(split, prefetch):
    cpu, gpu = batches(split, FailingCpuDecoder(BAD)), batches(split, FakeGpuDecoder(BAD), prefetch)
    counters = [BadVideoCounter(10, 0.5), BadVideoCounter(10, 0.5)]
    for a, b in zip(cpu, gpu):
        assert a["video_id"] == b["video_id"] and torch.equal(a["item"], b["item"])
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["video"], b["video"])
        assert [(r["path"], r["video_id"]) for r in a["skipped"]] == [(r["path"], r["video_id"]) for r in b["skipped"]]
        assert not set(b["video_id"]) & {"v1", "v4", "v6"}  # only good videos reach the step
        counters[0].update(a["skipped"])
        counters[1].update(b["skipped"])
    assert len(gpu) == 2 and counters[0].report() == counters[1].report()
    assert counters[1].report()["train/bad_videos"] == 3


def test_gpu_failure_in_evaluation_names_the_video(split):
    with pytest.raises(VideoDecodeError, match="v1.mp4.*chosen to fail"):
        batches(split, FakeGpuDecoder(["v1.mp4"]), skip_bad=False)


def test_gpu_all_bad_gives_up_with_a_clear_message(split):
    every = [Path(p).name for p in split.video_paths]
    with pytest.raises(VideoDecodeError, match="4 videos drawn in a row failed.*data.root"):
        batches(split, FakeGpuDecoder(every), max_attempts=4)


def test_training_runs_count_gpu_and_cpu_failures_alike(tmp_path):
    results = []
    for name, target in (("cpu", "tests.fake_gpu.FailingCpuDecoder"), ("gpu", "tests.fake_gpu.FakeGpuDecoder")):
        cfg = tiny_synthetic("bias", tmp_path / name, ["trainer.max_steps_per_epoch=3", "data.max_bad_fraction=0.2",
                                                       f"decoder._target_={target}"])
        names = [Path(p).name for p in instantiate(cfg.data.splits)["train"].video_paths[:4]]
        with open_dict(cfg):
            cfg.decoder.fail_on = names
        results.append(train(cfg))
    cpu, gpu = results
    assert cpu["train/bad_videos"] == gpu["train/bad_videos"] >= 2
    assert cpu["train/skipped_draws"] == gpu["train/skipped_draws"]
    saved = json.loads((tmp_path / "gpu" / "run" / "metrics.json").read_text())
    assert saved["train/bad_videos"] == gpu["train/bad_videos"]
    assert cpu["test/t2v_R@1"] == gpu["test/t2v_R@1"]  # the same replacements: the same training
