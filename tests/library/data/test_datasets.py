"""The dataset parsers: ActivityNet on the real files, DiDeMo and LSMDC on files written here in
exactly the real formats, and every data config loading through `data=...`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate

from tests.conftest import ACTIVITYNET_SUBSET
from tests.helpers import compose_cfg
from vop.data.annotations.activitynet import load_activitynet
from vop.data.annotations.common import AnnotationError, DataNotFoundError
from vop.data.annotations.didemo import load_didemo
from vop.data.annotations.lsmdc import load_lsmdc, movie_of


@pytest.fixture
def activitynet_root(tmp_path: Path, real_annotations: Path) -> Path:
    source = real_annotations / "activitynet"
    ann = tmp_path / "activitynet" / "annotations"
    ann.mkdir(parents=True)
    for name in ("train.json", "val_1.json"):
        (ann / name).symlink_to(source / name)
    return tmp_path / "activitynet"


def test_activitynet_counts(activitynet_root: Path, real_annotations: Path) -> None:
    # The shipped jsons are the real files' first 100 videos (tests/data/annotations/README.md);
    # the full files hold 10,009 (train) and 4,917 (val_1) videos, one paragraph query each.
    splits = load_activitynet(activitynet_root)
    assert splits["train"].num_videos == ACTIVITYNET_SUBSET and splits["train"].num_captions == ACTIVITYNET_SUBSET
    val = splits["val_1"]
    assert val.num_videos == ACTIVITYNET_SUBSET and val.num_captions == ACTIVITYNET_SUBSET  # one query per video
    raw = json.loads((real_annotations / "activitynet" / "val_1.json").read_text())
    first = next(iter(raw))
    assert val.video_ids[0] == first
    assert val.captions[0] == " ".join(s.strip() for s in raw[first]["sentences"])
    assert "  " not in val.captions[0]
    # The id lists are the real, complete ones: every annotated video is listed.
    for split, ids_file, total in (("train", "train_ids.json", 10_024), ("val_1", "val_ids.json", 4_926)):
        ids = json.loads((real_annotations / "activitynet" / ids_file).read_text())
        assert len(ids) == total and set(splits[split].video_ids) <= set(ids)


def test_activitynet_finds_either_file_naming(activitynet_root: Path) -> None:
    ids = load_activitynet(activitynet_root)["val_1"].video_ids
    videos = activitynet_root / "videos"
    videos.mkdir()
    (videos / f"{ids[0]}.mp4").write_bytes(b"x")          # v_<id>.mp4
    (videos / f"{ids[1][2:]}.mkv").write_bytes(b"x")       # <id>.mkv, no prefix
    paths = load_activitynet(activitynet_root)["val_1"].video_paths
    assert paths[0] == videos / f"{ids[0]}.mp4"
    assert paths[1] == videos / f"{ids[1][2:]}.mkv"
    assert paths[2] == videos / f"{ids[2]}.mp4" and not paths[2].exists()  # absent: the default name


def test_activitynet_bad_json(tmp_path: Path) -> None:
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "train.json").write_text(json.dumps({"v_a": {"duration": 1.0, "timestamps": []}}))
    (ann / "val_1.json").write_text("{}")
    with pytest.raises(AnnotationError, match="v_a.*sentences"):
        load_activitynet(tmp_path)


def _didemo_entries() -> list[dict]:
    # Real format: one entry per described moment, several per video, file name with extension.
    return [
        {"video": "a@N00_1_x.mov", "description": "a dog runs.", "times": [[0, 1]], "annotation_id": 1,
         "dl_link": "http://x", "context": [0, 1], "train_times": [[0, 1]], "num_annotations": 4},
        {"video": "b@N00_2_y.mp4", "description": "  a cat sleeps ", "times": [[2, 2]], "annotation_id": 2},
        {"video": "a@N00_1_x.mov", "description": "the dog stops", "times": [[3, 4]], "annotation_id": 3},
        {"video": "c@N00_3_z.avi", "description": "rain", "times": [[0, 0]], "annotation_id": 4},
    ]


@pytest.fixture
def didemo_root(tmp_path: Path) -> Path:
    ann = tmp_path / "didemo" / "annotations"
    ann.mkdir(parents=True)
    for split in ("train", "val", "test"):
        (ann / f"{split}_data.json").write_text(json.dumps(_didemo_entries()))
    return tmp_path / "didemo"


def test_didemo_paragraphs(didemo_root: Path) -> None:
    test = load_didemo(didemo_root)["test"]
    assert test.video_ids == ["a@N00_1_x.mov", "b@N00_2_y.mp4", "c@N00_3_z.avi"]
    assert test.captions == ["a dog runs. the dog stops", "a cat sleeps", "rain"]
    assert test.caption_video == [0, 1, 2]
    assert test.video_paths[0] == didemo_root / "videos" / "a@N00_1_x.mov"


def test_didemo_list_restricts_and_other_extension_found(didemo_root: Path) -> None:
    (didemo_root / "annotations" / "test_list.txt").write_text("a@N00_1_x.mov\nc@N00_3_z.avi\n\n")
    videos = didemo_root / "videos"
    videos.mkdir()
    (videos / "a@N00_1_x.mp4").write_bytes(b"x")  # re-encoded copy: same stem, other container
    splits = load_didemo(didemo_root)
    assert splits["test"].video_ids == ["a@N00_1_x.mov", "c@N00_3_z.avi"]
    assert splits["test"].video_paths[0] == videos / "a@N00_1_x.mp4"
    assert splits["train"].num_videos == 3  # no train_list.txt: every video


def test_didemo_missing_file_names_it(didemo_root: Path) -> None:
    (didemo_root / "annotations" / "val_data.json").unlink()
    with pytest.raises(DataNotFoundError, match="val_data.json"):
        load_didemo(didemo_root)


def test_didemo_bad_entry(didemo_root: Path) -> None:
    (didemo_root / "annotations" / "train_data.json").write_text(json.dumps([{"video": "a.mov"}]))
    with pytest.raises(AnnotationError, match="entry 0"):
        load_didemo(didemo_root)


LSMDC_ROWS = [  # real format: tab-separated, no header, 6 fields
    "0001_American_Beauty_00.00.51.926-00.00.54.129\t00.00.51.926\t00.00.54.129\t00.00.51.000\t00.00.55.000\t"
    "SOMEONE looks out of the window.",
    "0001_American_Beauty_00.00.51.926-00.00.54.129\t00.00.51.926\t00.00.54.129\t00.00.51.000\t00.00.55.000\t"
    "He sighs \"quietly\".",
    "1012_Unbreakable_00.27.53.212-00.27.55.300\t00.27.53.212\t00.27.55.300\t00.27.53.000\t00.27.56.000\t"
    "SOMEONE's train stops.",
]


@pytest.fixture
def lsmdc_root(tmp_path: Path) -> Path:
    ann = tmp_path / "lsmdc" / "annotations"
    ann.mkdir(parents=True)
    for name in ("LSMDC16_annos_training.csv", "LSMDC16_annos_val.csv", "LSMDC16_challenge_1000_publictect.csv"):
        (ann / name).write_text("\n".join(LSMDC_ROWS) + "\n")
    return tmp_path / "lsmdc"


def test_lsmdc_pairs_and_movie_folders(lsmdc_root: Path) -> None:
    train = load_lsmdc(lsmdc_root)["train"]
    assert train.num_captions == 3 and train.num_videos == 2  # the repeated clip keeps both pairs
    assert train.captions[:2] == ["SOMEONE looks out of the window.", 'He sighs "quietly".']
    assert train.caption_video == [0, 0, 1]
    clip = "0001_American_Beauty_00.00.51.926-00.00.54.129"
    assert train.video_paths[0] == lsmdc_root / "videos" / "0001_American_Beauty" / f"{clip}.avi"
    assert movie_of("1012_Unbreakable_00.27.53.212-00.27.55.300") == "1012_Unbreakable"


def test_lsmdc_wrong_field_count_names_line(lsmdc_root: Path) -> None:
    path = lsmdc_root / "annotations" / "LSMDC16_annos_val.csv"
    path.write_text(LSMDC_ROWS[0] + "\n" + "clip\tonly three\tfields\n")
    with pytest.raises(AnnotationError, match="line 2.*got 3"):
        load_lsmdc(lsmdc_root)


@pytest.mark.parametrize("name,root_fixture,counts", [
    ("msrvtt9k", "msrvtt_root", {"train": 9000, "test": 1000}),
    ("msrvtt7k", "msrvtt_root", {"train": 7010, "test": 1000}),
    ("activitynet", "activitynet_root", {"train": ACTIVITYNET_SUBSET, "val_1": ACTIVITYNET_SUBSET}),
    ("didemo", "didemo_root", {"train": 3, "test": 3}),
    ("lsmdc", "lsmdc_root", {"train": 2, "test": 2}),
])
def test_every_dataset_loads_through_its_config(name: str, root_fixture: str, counts: dict, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(root_fixture)
    cfg = compose_cfg("train", [f"data={name}", f"data.root={root}"], tmp_path)
    splits = instantiate(cfg.data.splits)
    assert {cfg.data.train_split, cfg.data.test_split} <= set(splits)
    assert {k: splits[k].num_videos for k in counts} == counts


def test_didemo_real_validation_file(tmp_path: Path, real_annotations: Path) -> None:
    """DiDeMo's real val_data.json (tests/data/annotations/didemo/, unchanged): 4,180 described moments
    of 1,094 videos, one paragraph query per video in file order; every moment's `times` are pairs of
    5-second segment indices 0-5, one pair per annotator (4, or 7 for some)."""
    ann = tmp_path / "didemo" / "annotations"
    ann.mkdir(parents=True)
    (ann / "val_data.json").symlink_to(real_annotations / "didemo" / "val_data.json")
    raw = json.loads((real_annotations / "didemo" / "val_data.json").read_text())
    val = load_didemo(tmp_path / "didemo", splits=("val",))["val"]
    assert (len(raw), val.num_videos, val.num_captions) == (4180, 1094, 1094)
    first = raw[0]["video"]
    assert val.video_ids[0] == first
    assert val.captions[0] == " ".join(e["description"].strip() for e in raw if e["video"] == first)
    assert {len(e["times"]) for e in raw} == {4, 7}
    assert all(0 <= start <= end <= 5 for e in raw for start, end in e["times"])
