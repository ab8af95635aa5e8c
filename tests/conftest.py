"""Shared fixtures: the real annotation files (tests/data/annotations) and data roots built on them."""
from __future__ import annotations

import json
import os
from pathlib import Path

# Tests never reach a model hub or W&B's servers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# One compute thread per process (the entry points and scripts the tests start inherit it), as the
# demo config runs (configs/experiment/demo.yaml): the tests train tiny models, where a second
# OpenMP thread gains little and, on 2 cores shared with data workers, servers and other jobs,
# spins against them. Measured beside other work (load ~3.6): the 13 one-epoch runs of
# tests/commands/test_train_eval.py took 41 s with PyTorch's default 2 threads, 14 s with 1.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # also if torch was imported before this file

from tests.helpers import REPO_ROOT  # noqa: E402  (after the environment above)

MSRVTT_CSVS = ("MSRVTT_train.9k.csv", "MSRVTT_train.7k.csv", "MSRVTT_JSFUSION_test.csv")
MSRVTT_NUM_VIDEOS = 10_000  # video0 .. video9999 cover the train, 7k and 1k-A test ids
MSRVTT_CAPTIONS_PER_VIDEO = 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`-m gpu` on a machine without CUDA: the GPU tests are skipped, not failed."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


ANNOTATIONS = REPO_ROOT / "tests" / "data" / "annotations"  # real files, shipped (see its README.md)
ACTIVITYNET_SUBSET = 100  # videos in each shipped ActivityNet json: the real files' first 100


@pytest.fixture(scope="session")
def real_annotations() -> Path:
    """The folder holding the real annotation files the tests use."""
    return ANNOTATIONS


def _msrvtt_data_json() -> dict:
    """A small MSRVTT_data.json with the real file's keys, 2 captions for each video.

    Sentences run caption-round by caption-round (all videos' first caption, then all second ones)
    so, as in the real file, a video's captions are not adjacent and the parser must group them.
    """
    videos = [
        {"category": i % 20, "url": f"https://www.youtube.com/watch?v=id{i}", "video_id": f"video{i}",
         "start time": 0.0, "end time": 10.0, "split": "train" if i < 6513 else "validate" if i < 7010 else "test",
         "id": i}
        for i in range(MSRVTT_NUM_VIDEOS)
    ]
    sentences = [
        {"caption": f"caption {k} of video{i}", "video_id": f"video{i}", "sen_id": k * MSRVTT_NUM_VIDEOS + i}
        for k in range(MSRVTT_CAPTIONS_PER_VIDEO)
        for i in range(MSRVTT_NUM_VIDEOS)
    ]
    return {"info": {"year": "2016", "version": "1.0"}, "videos": videos, "sentences": sentences}


@pytest.fixture(scope="session")
def msrvtt_data_json_text() -> str:
    # Generated once per session; each test writes its own copy so it may edit it.
    return json.dumps(_msrvtt_data_json())


@pytest.fixture
def msrvtt_root(tmp_path: Path, real_annotations: Path, msrvtt_data_json_text: str) -> Path:
    """A MSR-VTT data root: the real csv files (symlinked) plus a generated MSRVTT_data.json."""
    source = real_annotations / "msrvtt"
    annotations = tmp_path / "msrvtt" / "annotations"
    annotations.mkdir(parents=True)
    for name in MSRVTT_CSVS:
        (annotations / name).symlink_to(source / name)
    (annotations / "MSRVTT_data.json").write_text(msrvtt_data_json_text)
    return tmp_path / "msrvtt"
