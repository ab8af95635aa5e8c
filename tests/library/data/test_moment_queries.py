"""DiDeMo and ActivityNet read as moment queries (data.splits.queries=moments): each sentence its own query
with its time span, from the real annotation files in tests/data."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from vop.data.annotations.activitynet import load_activitynet
from vop.data.annotations.common import AnnotationError
from vop.data.annotations.didemo import agreed_seconds, load_didemo


def annotation_root(tmp_path: Path, source: Path, names: list[str]) -> Path:
    ann = tmp_path / "annotations"
    ann.mkdir(parents=True)
    for name in names:
        (ann / name).symlink_to(source / name)
    return tmp_path


def test_didemo_moments_one_query_per_description(tmp_path: Path, real_annotations: Path) -> None:
    raw = json.loads((real_annotations / "didemo" / "val_data.json").read_text())
    root = annotation_root(tmp_path, real_annotations / "didemo", ["val_data.json"])
    split = load_didemo(root, splits=("val",), queries="moments")["val"]
    assert split.num_captions == len(raw) == 4180 and split.num_videos == len({e["video"] for e in raw})
    for i in (0, 1, 1234, len(raw) - 1):
        entry = raw[i]
        assert split.captions[i] == entry["description"]
        assert split.video_ids[split.caption_video[i]] == entry["video"]
        assert split.caption_times[i] == [(5.0 * a, 5.0 * (b + 1)) for a, b in entry["times"]]
        # the span most annotators gave, segments of 5 s: [1, 1] is seconds 5-10
        first, last = max(entry["times"], key=entry["times"].count)
        assert split.caption_spans[i] == (5.0 * first, 5.0 * (last + 1))


def test_didemo_agreed_span_prefers_the_first_of_equals() -> None:
    assert agreed_seconds(((1, 1), (1, 1), (1, 1), (0, 0))) == (5.0, 10.0)
    assert agreed_seconds(((0, 2), (3, 3), (3, 3), (0, 2))) == (0.0, 15.0)
    assert agreed_seconds(((2, 5), (0, 0), (1, 1), (4, 4))) == (10.0, 30.0)


def test_activitynet_moments_each_sentence_with_its_timestamps(tmp_path: Path, real_annotations: Path) -> None:
    raw = json.loads((real_annotations / "activitynet" / "val_1.json").read_text())
    root = annotation_root(tmp_path, real_annotations / "activitynet", ["val_1.json"])
    split = load_activitynet(root, splits={"val_1": "val_1.json"}, queries="moments")["val_1"]
    assert split.num_videos == len(raw) and split.num_captions == sum(len(v["sentences"]) for v in raw.values())
    row = 0
    for key, entry in raw.items():
        for text, (start, end) in zip(entry["sentences"], entry["timestamps"]):
            assert split.captions[row] == text.strip() and split.video_ids[split.caption_video[row]] == key
            assert split.caption_spans[row] == (max(0.0, start), min(end, entry["duration"]))
            row += 1
    # two real spans end a hundredth of a second past their video's duration: kept, cut at the end
    assert all(0 <= s < e for s, e in split.caption_spans)


def test_activitynet_reversed_span_left_out_and_counted(tmp_path: Path, caplog) -> None:
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "val_1.json").write_text(json.dumps({"v_a": {"duration": 20.0, "timestamps": [[1.0, 5.0], [9.0, 4.0]],
                                                        "sentences": ["one", "two"]}}))
    with caplog.at_level(logging.WARNING):
        split = load_activitynet(tmp_path, splits={"val_1": "val_1.json"}, queries="moments")["val_1"]
    assert split.captions == ["one"] and split.caption_spans == [(1.0, 5.0)] and split.info["left_out"] == 1
    assert "1 sentences left out" in caplog.text and "v_a sentence 1" in caplog.text


def test_activitynet_moments_need_timestamps(tmp_path: Path) -> None:
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "val_1.json").write_text(json.dumps({"v_a": {"duration": 20.0, "timestamps": [[1.0, 5.0]],
                                                        "sentences": ["one", "two"]}}))
    with pytest.raises(AnnotationError, match=r"val_1.json: video 'v_a' needs .*'timestamps'"):
        load_activitynet(tmp_path, splits={"val_1": "val_1.json"}, queries="moments")


def test_unknown_queries_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"data.splits.queries='sentences'"):
        load_didemo(tmp_path, queries="sentences")
