"""`data=custom`: a user's own videos (real files in subfolders, names with spaces, mp4 / mkv / mov /
avi) and captions as .json, .csv or .jsonl. Ids resolve with or without the suffix by the one rule
the folder gallery uses; splits come from a `split` column or a seeded held-out fraction of the
videos (never one video in two splits); every bad input is an error naming the file, row and key;
`train.py data=custom ...` trains and writes metrics.json into a run folder named after the videos
folder, and eval.py / retrieve.py build read the same data."""
from __future__ import annotations

import csv
import json
import logging
import random
from pathlib import Path

import pytest

from tests.helpers import assert_one_block, cli, command_in_process, compose_cfg
from vop.commands.eval import evaluate_run
from vop.commands.retrieve import build
from vop.commands.train import train
from vop.config.check import check_config
from vop.data.annotations.common import AnnotationError, DataNotFoundError
from vop.data.annotations.custom import load_custom
from vop.data.sample_videos import write_video
from vop.data.synthetic import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES, VideoSpec, render, write_mp4
from vop.data.video_files import list_videos
from vop.errors import ConfigError, InputError
from vop.retrieval.folder import folder_split

CONTAINERS = (".mp4", ".mkv", ".mov", ".avi")
FOLDERS = ("beach", "city", "road trip")
NUM_VIDEOS = 12
UNCAPTIONED = "extra/no caption.mp4"
# The run's shrunk settings (like tests/helpers.py SMALL_SYNTHETIC, for data=custom).
SMALL = ["model=clip_tiny", "method=bias", "trainer.epochs=1", "trainer.device=cpu", "trainer.progress=false",
         "data.num_frames=4", "data.batch_size=8", "data.eval_batch_size=8", "data.num_workers=0",
         "data.test_fraction=0.25"]


def relative_name(i: int) -> str:
    """Video i's file: three subfolders (one with a space), a space in every name, four containers."""
    return f"{FOLDERS[i % 3]}/clip {i}{CONTAINERS[i % 4]}"


def written_id(i: int) -> str:
    """How a caption file names video i: with the suffix for even i, without it for odd i."""
    name = relative_name(i)
    return name if i % 2 == 0 else name.rsplit(".", 1)[0]


def rows(split_of=None) -> list[dict]:
    """Two captions per video, as (video, caption[, split]) records."""
    out = []
    for i in range(NUM_VIDEOS):
        for k in range(2):
            row = {"video": written_id(i), "caption": f"caption {k} of clip {i}"}
            if split_of is not None:
                row["split"] = split_of(i)
            out.append(row)
    return out


def write_captions(path: Path, records: list[dict]) -> Path:
    """`records` in the format `path`'s suffix names (.json has no split: {video: [captions]})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        mapping: dict[str, list[str]] = {}
        for r in records:
            mapping.setdefault(r["video"], []).append(r["caption"])
        path.write_text(json.dumps(mapping))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_clip(path: Path, i: int) -> None:
    """A distinct 8-frame 64x48 H.264 clip (the synthetic generator's shapes), in `path`'s container."""
    spec = VideoSpec(f"clip {i}", SHAPES[i % len(SHAPES)], list(COLOURS)[i % len(COLOURS)],
                     list(BACKGROUNDS)[(i // 4) % len(BACKGROUNDS)], list(DIRECTIONS)[i % 4], 8.0, (32.0, 24.0), 2.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, render(spec, 8, 64, 48), fps=8)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("collection") / "holiday_clips"
    for i in range(NUM_VIDEOS + 1):
        write_clip(root / (relative_name(i) if i < NUM_VIDEOS else UNCAPTIONED), i)
    (root / "notes.txt").write_text("not a video")
    return root


def video_ids(splits) -> dict[str, list[str]]:
    return {name: split.video_ids for name, split in splits.items()}


# ------------------------------------------------------------------ formats and splits
def test_the_three_formats_resolve_ids_and_hold_out_the_same_videos(videos, tmp_path, caplog):
    parsed = []
    for suffix in (".json", ".csv", ".jsonl"):
        with caplog.at_level(logging.INFO, logger="vop.data.annotations.custom"):
            parsed.append(load_custom(str(videos), str(write_captions(tmp_path / f"c{suffix}", rows())), 0.25))
    assert [video_ids(p) for p in parsed[1:]] == [video_ids(parsed[0])] * 2
    splits = parsed[0]
    assert set(splits) == {"train", "test"} and splits["test"].num_videos == 3 and splits["train"].num_videos == 9
    for split in splits.values():
        for vid, path in zip(split.video_ids, split.video_paths):
            i = int(vid.rsplit(" ", 1)[1])
            assert vid == relative_name(i).rsplit(".", 1)[0] and path == videos / relative_name(i) and path.is_file()
        assert split.captions == [f"caption {k} of clip {v.rsplit(' ', 1)[1]}" for v in split.video_ids for k in (0, 1)]
    assert "no caption" not in str(video_ids(splits))  # the uncaptioned video is in no split, only counted
    assert "1 of 13 videos" in caplog.text and "train 9 videos / 18 captions" in caplog.text


def test_the_held_out_split_is_by_video_and_follows_the_seed(videos, tmp_path):
    path = write_captions(tmp_path / "c.csv", rows())
    splits = load_custom(str(videos), str(path), test_fraction=0.25, val_fraction=0.2, seed=3)
    sets = {name: set(ids) for name, ids in video_ids(splits).items()}
    assert {n: len(s) for n, s in sets.items()} == {"train": 7, "val": 2, "test": 3}
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    assert len(set.union(*sets.values())) == NUM_VIDEOS
    for split in splits.values():  # every caption of a video is where its video is
        assert all(c.endswith(f"clip {split.video_ids[v].rsplit(' ', 1)[1]}")
                   for c, v in zip(split.captions, split.caption_video))
    again = load_custom(str(videos), str(path), test_fraction=0.25, val_fraction=0.2, seed=3)
    assert video_ids(again) == video_ids(splits)
    shuffled = rows()
    random.Random(0).shuffle(shuffled)  # the draw depends on the videos, not on the file's order
    reordered = load_custom(str(videos), str(write_captions(tmp_path / "s.csv", shuffled)), 0.25, 0.2, 3)
    assert {n: set(ids) for n, ids in video_ids(reordered).items()} == sets
    others = [set(load_custom(str(videos), str(path), 0.25, 0.2, s)["test"].video_ids) for s in range(4, 8)]
    assert any(o != sets["test"] for o in others)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_split_column_sets_the_splits(videos, tmp_path, suffix):
    split_of = {0: "test", 1: "val"}
    path = write_captions(tmp_path / f"c{suffix}", rows(lambda i: split_of.get(i % 4, "train")))
    splits = load_custom(str(videos), str(path), test_fraction=0.9)  # a split column: the fractions are unused
    assert {n: [int(v.rsplit(" ", 1)[1]) for v in ids] for n, ids in video_ids(splits).items()} == \
        {"train": [2, 3, 6, 7, 10, 11], "val": [1, 5, 9], "test": [0, 4, 8]}
    assert splits["val"].info["split_rule"] == "split column" and splits["val"].num_captions == 6


# ------------------------------------------------------------------ errors
def csv_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad captions.csv"
    path.write_text(text)
    return path


BAD_FILES = {  # case: (file name, its text, error class, what the message must name)
    "unknown video": ("c.csv", "video,caption\nbeach/clip 0.mp4,fine\nbeach/clp 3,a caption\n", AnnotationError,
                      ["c.csv line 3: 'beach/clp 3'", "beach/clp 3.<mp4|", "did you mean 'beach/clip 3.avi'?"]),
    "nothing close": ("c.csv", "video,caption\nbeach/clip 0.mp4,fine\nzzz,a\nzzz,b\nbeach/clip 0.mp5,c\n",
                      AnnotationError, ["3 caption row(s) of", "c.csv line 3 (and 1 more row(s)): 'zzz'",
                                        "no file has a close name", "c.csv line 5: 'beach/clip 0.mp5'",
                                        "did you mean 'beach/clip 0.mp4'?"]),
    "wrong suffix": ("c.csv", "video,caption\nbeach/clip 0.mkv,a caption\n", AnnotationError,
                     ["c.csv line 2: 'beach/clip 0.mkv'", "did you mean 'beach/clip 0.mp4'?"]),
    "empty caption": ("c.csv", "video,caption\nbeach/clip 0,ok\nbeach/clip 0,  \n", AnnotationError,
                      ["c.csv line 3, key 'caption': empty caption"]),
    "empty caption json": ("c.json", '{"beach/clip 0": ["ok", ""]}', AnnotationError,
                           ["c.json line 1, key 'beach/clip 0': empty caption"]),
    "unknown split": ("c.csv", "video,caption,split\nbeach/clip 0,a,train\nbeach/clip 3,b,tset\n", AnnotationError,
                      ["c.csv line 3, key 'split'", "'tset'", "train, val, test"]),
    "missing split": ("c.jsonl", '{"video": "beach/clip 0", "caption": "a", "split": "test"}\n'
                      '{"video": "beach/clip 3", "caption": "b"}\n', AnnotationError, ["c.jsonl line 2, key 'split'"]),
    "two splits": ("c.csv", "video,caption,split\nbeach/clip 0,a,train\nbeach/clip 0.mp4,b,test\n", AnnotationError,
                   ["'beach/clip 0' is in two splits", "c.csv line 2", "c.csv line 3"]),
    "missing column": ("c.csv", "video,text\nbeach/clip 0,a\n", AnnotationError,
                       ["c.csv line 1 (the header) lacks column(s) ['caption']"]),
    "missing key": ("c.jsonl", '{"video": "beach/clip 0", "caption": "a"}\n\n{"video": "beach/clip 3"}\n',
                    AnnotationError, ["c.jsonl line 3 lacks the key 'caption'"]),
    "bad jsonl": ("c.jsonl", '{"video": "beach/clip 0", "caption": "a"}\n{"video": \n', AnnotationError,
                  ["c.jsonl line 2 is not valid JSON (Expecting value, column 11)"]),
    "bad json": ("c.json", '{"beach/clip 0": "a",\n "beach/clip 3": "b",,\n}', AnnotationError,
                 ["c.json is not valid JSON (Expecting property name enclosed in double quotes: line 2 column 22"]),
    "spaces around id": ("c.csv", "video,caption\n beach/clip 0,a\n", AnnotationError,
                         ["c.csv line 2: video id \" beach/clip 0\" has leading or trailing spaces"]),
    "spaces around a json id": ("c.json", '{\n "beach/clip 0": "a",\n "beach/clip 3 ": "b"}', AnnotationError,
                                ["c.json line 3: video id \"beach/clip 3 \" has leading or trailing spaces"]),
    "unquoted comma": ("c.csv", "video,caption\nbeach/clip 0,a dog, running\n", AnnotationError,
                       ["c.csv line 2: 3 fields, but the header (line 1) names 2", '"a dog, running"']),
    "not utf-8": ("c.csv", "video,caption\nbeach/clip 0,a caf\udce9\n", AnnotationError,
                  ["c.csv is not UTF-8 text: byte 0xe9 at byte offset 32 (line 2)"]),
    "no captions": ("c.csv", "video,caption\n", AnnotationError, ["c.csv holds no captions"]),
    "unknown format": ("c.txt", "beach/clip 0 a caption\n", ConfigError, ["data.captions=", "'.txt'", ".jsonl"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_captions_file_names_file_line_and_key(videos, tmp_path, case):
    name, text, error, needles = BAD_FILES[case]
    (tmp_path / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(error) as err:
        load_custom(str(videos), str(tmp_path / name))
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


@pytest.mark.parametrize("fractions, needle", [
    ((0.0, 0.0), "data.test_fraction=0.0 puts no video in the test split"),
    ((0.6, 0.4), "the train split has no videos: 12 captioned video(s), 7 held out for test"),
])
def test_a_split_without_videos_is_refused(videos, tmp_path, fractions, needle):
    with pytest.raises(AnnotationError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_custom(str(videos), str(write_captions(tmp_path / "c.json", rows())), *fractions)


def test_unset_or_missing_videos_and_captions_name_the_key(videos, tmp_path):
    captions = str(write_captions(tmp_path / "c.json", rows()))
    for args, error, needle in (
        ((None, captions), ConfigError, "data.videos is not set"),
        ((str(videos), None), ConfigError, "data.captions is not set"),
        ((str(tmp_path / "gone"), captions), DataNotFoundError, f"data.videos={tmp_path / 'gone'}: "),
        ((captions, captions), DataNotFoundError, "is not a folder"),
        ((str(tmp_path), captions), DataNotFoundError, "no video files under"),
        ((str(videos), str(tmp_path / "gone.csv")), DataNotFoundError, "data.captions="),
    ):
        with pytest.raises(error, match=needle):
            load_custom(*args)


def test_two_files_answering_one_id_are_refused_here_and_by_the_folder_gallery(videos, tmp_path):
    folder = tmp_path / "clips"
    write_video(folder / "a" / "x.mp4", frames=4, width=64, height=48)
    write_video(folder / "a" / "x.mkv", frames=4, width=64, height=48)
    captions = write_captions(tmp_path / "c.json", [{"video": "a/x.mp4", "caption": "one"}])
    for call in (lambda: load_custom(str(folder), str(captions)), lambda: folder_split(folder, captions)):
        with pytest.raises(InputError, match="answer the video id 'a/x'") as err:
            call()
        assert str(folder / "a" / "x.mkv") in str(err.value) and str(folder / "a" / "x.mp4") in str(err.value)


def test_the_folder_gallery_resolves_ids_by_the_same_rule(videos, tmp_path):
    mapping = {written_id(i): f"caption of clip {i}" for i in range(NUM_VIDEOS)}
    split = folder_split(videos, write_captions(tmp_path / "c.json", [{"video": k, "caption": v}
                                                                       for k, v in mapping.items()]))
    assert split.video_ids == list(list_videos(videos).files) and split.num_videos == NUM_VIDEOS + 1
    owners = {c: split.video_ids[v] for c, v in zip(split.captions, split.caption_video)}
    assert owners == {f"caption of clip {i}": relative_name(i).rsplit(".", 1)[0] for i in range(NUM_VIDEOS)}


# ------------------------------------------------------------------ configs and commands
def test_the_config_names_the_data_set_after_its_folder(videos, tmp_path):
    cfg = compose_cfg("train", ["data=custom", f"data.videos={videos}", "data.captions=c.json", *SMALL], tmp_path)
    check_config(cfg)
    assert cfg.data.name == "holiday_clips" and cfg.data.root == str(videos)
    unset = compose_cfg("train", ["data=custom", "model=clip_tiny"], tmp_path)
    check_config(unset)  # composes without data.videos; the parser names it when a run reads the data
    assert unset.data.name == "custom"
    with pytest.raises(ConfigError, match="data.videos=None is not allowed"):
        check_config(compose_cfg("train", ["data=custom", "model=clip_tiny", "data.videos=null"], tmp_path))


def test_train_without_data_videos_is_one_error_block(tmp_path):
    proc = command_in_process(train, "train", tmp_path, "data=custom", "model=clip_tiny")
    assert_one_block(proc, "data.videos is not set", "data.videos=<the folder of your videos>")


def test_train_eval_and_retrieve_on_own_videos(videos, tmp_path):
    captions = write_captions(tmp_path / "captions.csv", rows())
    data = ["data=custom", f"data.videos={videos}", f"data.captions={captions}"]
    proc = cli("train.py", *data, *SMALL, f"paths.log_dir={tmp_path / 'logs'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = (tmp_path / "logs" / "train").glob("*_bias_holiday_clips")
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["test/num_videos"] == 3 and "splits held out" in proc.stdout + proc.stderr
    assert (trained["train/num_videos"], trained["train/num_captions"]) == (9, 18)  # two captions each
    overrides = [f"ckpt={run}", "trainer.device=cpu"]
    evaluated = evaluate_run(compose_cfg("eval", overrides, tmp_path / "eval"), overrides=overrides)
    assert evaluated["test/t2v_R@1"] == pytest.approx(trained["test/t2v_R@1"])
    assert json.loads((tmp_path / "eval" / "run" / "metrics.json").read_text())["test/num_captions"] == \
        trained["test/num_captions"]
    overrides = [*overrides, "action=build", f"gallery={tmp_path / 'g.safetensors'}", "split=train"]
    gallery = build(compose_cfg("retrieve", overrides, tmp_path / "retrieve"), overrides)
    assert len(gallery.video_ids) == 9
