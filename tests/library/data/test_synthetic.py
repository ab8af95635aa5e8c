"""The synthetic dataset: real mp4 files whose pixels show what the captions say."""
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.pixels import decode_all, read_pixels
from vop.data import synthetic
from vop.data.decoders.decord import DecordDecoder
from vop.data.synthetic import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES, load_synthetic

SMALL = dict(num_train=10, num_test=12, frames=12, seed=3)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return load_synthetic(tmp_path_factory.mktemp("syn"), **SMALL)


def mentioned(caption: str, vocabulary) -> set[str]:
    # "\bup" also matches "upwards"; no other caption word starts with a direction or colour name.
    return {word for word in vocabulary if re.search(rf"\b{word}", caption)}


def test_counts_and_layout(small: dict) -> None:
    train, test = small["train"], small["test"]
    assert (train.num_videos, train.num_captions) == (10, 20)
    assert (test.num_videos, test.num_captions) == (12, 12)
    assert train.caption_video == [i // 2 for i in range(20)]
    for i in range(10):  # two differently phrased captions per training video
        assert train.captions[2 * i] != train.captions[2 * i + 1]
    folder = Path(train.info["root"])
    assert folder.name == "v1_n10-12_f12_160x120_8fps_s3"
    assert (folder / "captions.json").is_file()
    for split in (train, test):
        for vid, path in zip(split.video_ids, split.video_paths):
            assert path == folder / split.name / f"{vid}.mp4" and path.stat().st_size > 0
            assert DecordDecoder().num_frames(path) == 12
    assert len(set(test.captions)) == 12  # distinct test combinations: retrieval is unambiguous


def test_captions_describe_the_pixels(small: dict) -> None:
    for split in small.values():
        for i, path in enumerate(split.video_paths):
            seen = read_pixels(decode_all(path))
            for text in (c for c, v in zip(split.captions, split.caption_video) if v == i):
                assert mentioned(text, COLOURS) == {seen["colour"]}, (path.name, text, seen)
                assert mentioned(text, BACKGROUNDS) == {seen["background"]}, (path.name, text, seen)
                assert mentioned(text, SHAPES) == {seen["shape"]}, (path.name, text, seen)
                assert mentioned(text, DIRECTIONS) == {seen["direction"]}, (path.name, text, seen)


def test_deterministic_by_seed(small: dict, tmp_path: Path) -> None:
    again = load_synthetic(tmp_path, **SMALL)
    for name in ("train", "test"):
        assert again[name].captions == small[name].captions
        assert again[name].video_ids == small[name].video_ids
        for a, b in zip(again[name].video_paths[:4], small[name].video_paths[:4]):
            assert np.array_equal(decode_all(a), decode_all(b))
    other = load_synthetic(tmp_path, **{**SMALL, "seed": 4})
    assert other["test"].captions != small["test"].captions


def test_complete_folder_is_reused(small: dict, caplog: pytest.LogCaptureFixture) -> None:
    root = Path(small["train"].info["root"]).parent
    files = sorted(root.rglob("*.mp4"))
    before = [f.stat().st_mtime_ns for f in files]
    with caplog.at_level(logging.INFO, logger="vop.data.synthetic"):
        again = load_synthetic(root, **SMALL)
    assert [m.getMessage() for m in caplog.records if "reusing" in m.getMessage()]
    assert [f.stat().st_mtime_ns for f in files] == before
    assert again["train"].captions == small["train"].captions


def test_interrupted_generation_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write, calls = synthetic.write_mp4, []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-generation
        real_write(*args, **kwargs)

    monkeypatch.setattr(synthetic, "write_mp4", failing_write)
    with pytest.raises(KeyboardInterrupt):
        load_synthetic(tmp_path, num_train=2, num_test=2, frames=4)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left to be mistaken as complete
    monkeypatch.setattr(synthetic, "write_mp4", real_write)
    splits = load_synthetic(tmp_path, num_train=2, num_test=2, frames=4)
    assert all(p.is_file() for s in splits.values() for p in s.video_paths)


def test_stale_temp_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    key = "v1_n2-2_f4_160x120_8fps_s0"
    stale = tmp_path / f".{key}.tmp-{socket.gethostname()}-{int(dead.stdout)}"
    (stale / "train").mkdir(parents=True)
    load_synthetic(tmp_path, num_train=2, num_test=2, frames=4)
    assert not stale.exists() and (tmp_path / key / "captions.json").is_file()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=161), "even"),
        (dict(height=30), "even"),
        (dict(frames=1), "frames"),
        (dict(num_test=0), "num_test"),
        (dict(fps=0), "fps"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_synthetic(tmp_path, **kwargs)
    assert not os.listdir(tmp_path)
