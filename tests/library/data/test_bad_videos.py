"""Missing, unreadable and truncated videos: in training skipped, counted, logged and limited; in
evaluation an error naming them, or excluded from the metrics and marked."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hydra.utils import instantiate

from tests.helpers import tiny_synthetic
from vop.commands.eval import evaluate_run
from vop.commands.train import train
from vop.data.bad_videos import BadVideoCounter, BadVideosError, usable_test_split, usable_train_split
from vop.data.dataset import Collate, VideoTextDataset, make_loader
from vop.data.decoders.base import VideoDecodeError
from vop.data.decoders.decord import DecordDecoder
from vop.data.manifest import read_manifest, scan, write_manifest
from vop.data.sample_videos import write_video
from vop.data.split import Split


def break_video(path: Path, how: str) -> None:
    """Make a real video file into one of the bad cases."""
    if how == "missing":
        path.unlink()
    elif how == "zero_bytes":
        path.write_bytes(b"")
    elif how == "truncated":  # the mp4's first half: its index (written last) is gone
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "not_video":
        path.write_text("<html>404 not found</html>\n" * 20)


@pytest.fixture
def split(tmp_path: Path) -> Split:
    paths = [write_video(tmp_path / f"v{i}.mp4", 8 if i else 3, 64, 48, gop=4) for i in range(6)]
    # v0 has 3 frames, fewer than the 4 asked for below: frames repeat, it is not a bad video.
    return Split("train", [f"v{i}" for i in range(6)], paths, [f"caption {i}" for i in range(6)], list(range(6)))


def test_training_skips_each_bad_case_deterministically(split: Split) -> None:
    for i, how in zip((1, 2, 3, 4), ("missing", "zero_bytes", "truncated", "not_video")):
        break_video(split.video_paths[i], how)
    dataset = VideoTextDataset(split, DecordDecoder(), 4, "rand", 48, skip_bad=True, seed=1)
    for item in range(6):
        got = dataset[item]
        assert got["video"].shape == (4, 48, 48, 3)
        assert got["index"] in (0, 5)  # only the good videos are served
        assert got["text"] == f"caption {got['index']}"  # the caption travels with its video
        if item in (1, 2, 3, 4):
            assert got["skipped"][0]["path"] == str(split.video_paths[item])
        assert all(r["video_id"] in {"v1", "v2", "v3", "v4"} for r in got["skipped"])
        again = dataset[item]
        assert again["index"] == got["index"] and again["skipped"] == got["skipped"]
    batch = Collate()([dataset[1], dataset[2], dataset[0]])
    assert {r["video_id"] for r in batch["skipped"]} >= {"v1", "v2"}


def test_evaluation_does_not_skip(split: Split) -> None:
    break_video(split.video_paths[2], "truncated")
    dataset = VideoTextDataset(split, DecordDecoder(), 4, "uniform", 48, per="video")
    with pytest.raises(VideoDecodeError, match="check_videos.py") as err:
        dataset[2]
    assert err.value.path == str(split.video_paths[2])


def test_all_bad_gives_up_with_a_clear_message(split: Split) -> None:
    for path in split.video_paths:
        break_video(path, "zero_bytes")
    dataset = VideoTextDataset(split, DecordDecoder(), 4, "rand", 48, skip_bad=True, max_attempts=5)
    with pytest.raises(VideoDecodeError, match="5 videos drawn in a row failed.*data.root"):
        dataset[0]


def test_counter_logs_each_path_once_and_enforces_the_fraction(caplog: pytest.LogCaptureFixture) -> None:
    counter = BadVideoCounter(num_videos=100, max_bad_fraction=0.02)
    with caplog.at_level(logging.WARNING):
        counter.update([{"path": "/d/a.mp4", "reason": "empty", "video_id": "a"}] * 2)
        counter.update([{"path": "/d/b.mp4", "reason": "truncated", "video_id": "b"}])
    assert caplog.text.count("/d/a.mp4") == 1 and "/d/b.mp4" in caplog.text
    assert counter.report() == {"train/bad_videos": 2, "train/skipped_draws": 3}
    with pytest.raises(BadVideosError, match=r"3 of 100 train videos \(3.00%\).*data.max_bad_fraction=0.02"):
        counter.update([{"path": "/d/c.mp4", "reason": "x", "video_id": "c"}])


def test_missing_training_videos_are_excluded_up_front(split: Split) -> None:
    break_video(split.video_paths[3], "missing")
    kept, counter = usable_train_split(split, 0.5, None)
    assert kept.video_ids == ["v0", "v1", "v2", "v4", "v5"] and kept.captions[3] == "caption 4"
    assert counter.report()["train/bad_videos"] == 1
    with pytest.raises(BadVideosError, match="v3.mp4"):
        usable_train_split(split, 0.1, None)


def test_missing_test_video_is_an_error_unless_allowed(split: Split) -> None:
    test = Split("test", split.video_ids, split.video_paths, split.captions, split.caption_video)
    break_video(test.video_paths[4], "missing")
    with pytest.raises(BadVideosError, match=r"1 of 6 test videos.*v4.mp4.*allow_missing_test=true"):
        usable_test_split(test, False, None)
    kept, report = usable_test_split(test, True, None)
    assert kept.num_videos == 5 and "caption 4" not in kept.captions
    assert report == {"test/excluded_videos": 1, "comparable": False}
    assert usable_test_split(kept, False, None)[1] == {"test/excluded_videos": 0, "comparable": True}


def test_manifest_records_and_marks_broken_videos(split: Split, tmp_path: Path) -> None:
    break_video(split.video_paths[1], "truncated")
    break_video(split.video_paths[2], "missing")
    records = list(scan(DecordDecoder(), zip(split.video_ids, split.video_paths), workers=2))
    assert [r["status"] for r in records] == ["ok", "error", "missing", "ok", "ok", "ok"]
    assert records[0]["frames"] == 3 and records[3]["frames"] == 8
    assert records[3]["fps"] == 25 and records[3]["width"] == 64 and records[3]["duration"] == pytest.approx(0.32)
    assert records[1]["error"] and records[3]["size"] == split.video_paths[3].stat().st_size
    manifest = write_manifest(tmp_path / "manifest.jsonl", records)
    assert read_manifest(manifest)[str(split.video_paths[1])]["status"] == "error"
    kept, _ = usable_train_split(split, 0.5, str(manifest))  # the manifest's error excludes v1 too
    assert kept.video_ids == ["v0", "v3", "v4", "v5"]


def _synthetic_paths(cfg) -> dict:
    return instantiate(cfg.data.splits)


def test_training_run_survives_bad_videos_and_reports_them(tmp_path: Path) -> None:
    cfg = tiny_synthetic("bias", tmp_path, ["trainer.max_steps_per_epoch=3", "data.max_bad_fraction=0.1"])
    train_paths = _synthetic_paths(cfg)["train"].video_paths
    break_video(train_paths[0], "missing")
    break_video(train_paths[1], "truncated")
    break_video(train_paths[2], "zero_bytes")
    cfg.data.batch_size = 16  # 3 steps x 16 draws of 47 videos: both bad ones are met
    result = train(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    # The missing one is excluded up front; the other two are found when drawn (the seed fixes which draws).
    assert saved["train/bad_videos"] == result["train/bad_videos"] == 3
    assert saved["train/skipped_draws"] >= 2
    assert saved["comparable"] is True and saved["test/excluded_videos"] == 0


def test_training_run_stops_above_the_limit(tmp_path: Path) -> None:
    cfg = tiny_synthetic("bias", tmp_path, ["trainer.max_steps_per_epoch=2", "data.max_bad_fraction=0.05"])
    for path in _synthetic_paths(cfg)["train"].video_paths[:3]:  # 3 of 48 > 5% x 48 = 2.4
        break_video(path, "missing")
    with pytest.raises(BadVideosError, match="3 of 48 train videos.*max_bad_fraction=0.05"):
        train(cfg)


def test_eval_missing_test_video(tmp_path: Path) -> None:
    cfg = tiny_synthetic("zeroshot", tmp_path, config_name="eval")
    missing = _synthetic_paths(cfg)["test"].video_paths[5]
    break_video(missing, "missing")
    with pytest.raises(BadVideosError, match=str(missing)):
        evaluate_run(cfg)
    cfg.data.allow_missing_test = True
    metrics = evaluate_run(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved["comparable"] is False and saved["test/excluded_videos"] == 1
    assert saved["test/t2v_R@1"] == metrics["test/t2v_R@1"]


def test_skips_reach_the_main_process_from_worker_processes(split: Split) -> None:
    break_video(split.video_paths[2], "zero_bytes")
    dataset = VideoTextDataset(split, DecordDecoder(), 4, "rand", 48, skip_bad=True)
    loader = make_loader(dataset, batch_size=3, shuffle=True, num_workers=2, collate=Collate(), seed=0)
    counter = BadVideoCounter(split.num_videos, 0.5)
    served = []
    for batch in loader:  # items are decoded in two worker processes
        counter.update(batch["skipped"])
        served += batch["index"].tolist()
    assert counter.report() == {"train/bad_videos": 1, "train/skipped_draws": 1}
    assert counter.bad == {str(split.video_paths[2]): "file is empty (0 bytes) (split 'train', item 2, video 'v2')"}
    assert len(served) == 6 and 2 not in served


def test_a_broken_test_video_stops_a_run_before_it_trains(tmp_path):
    """No manifest: every test video's header is opened before training (it used to train a whole
    epoch, then die in evaluation with a traceback per worker)."""
    cfg = tiny_synthetic("bias", tmp_path, ["trainer.epochs=3"])
    video = instantiate(cfg.data.splits, _partial_=True)()["test"].video_paths[3]  # writes the videos
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 cut off in the copy")
    with pytest.raises(BadVideosError, match=f"1 of 16 test videos are missing or broken: {video} \\(it does not "
                                             "open as a video"):
        train(cfg)
    assert not (tmp_path / "run" / "log.jsonl").exists()  # refused while the run was being assembled
