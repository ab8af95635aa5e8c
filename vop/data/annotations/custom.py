"""A user's own videos and captions (`data=custom data.videos=<folder> data.captions=<file>`).

The captions file is one of (docs/own_videos.md):
- `.json`: `{video id: caption or [captions]}` (what `retrieve.py captions=` reads);
- `.csv`: a header with the columns `video`, `caption` and optionally `split`;
- `.jsonl`: one object per line with the keys `video`, `caption` and optionally `split`.

Video ids are paths relative to the videos folder, with or without the suffix; they resolve by the
one rule of vop/data/video_files.py, shared with the folder gallery. Splits come from the `split`
column (train / val / test), or, without one, from a seeded held-out fraction of the videos: all
captions of a video land in one split. A video without a caption is counted, logged, in no split.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vop.data.annotations.common import (
    AnnotationError,
    DataNotFoundError,
    checked_video_id,
    few,
    grouped_split,
    read_csv,
    read_json,
    read_text,
)
from vop.data.split import Split
from vop.data.video_files import VIDEO_SUFFIXES, VideoFolder, list_videos
from vop.errors import ConfigError

log = logging.getLogger(__name__)

DATASET = "custom data"
DOC = "docs/own_videos.md"
SPLITS = ("train", "val", "test")
FORMATS = (".json", ".csv", ".jsonl")


@dataclass(frozen=True)
class Row:
    """One caption as the file gives it; `where` names the file and its row (or key) in messages."""

    video: str
    caption: str
    split: str | None
    where: str


def load_custom(
    videos: str | None,
    captions: str | None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, Split]:
    """{"train": ..., "test": ...[, "val": ...]} of the videos under `videos` described by `captions`.

    With a `split` column the splits are the ones it names (fractions unused); without one, a
    `test_fraction` (and `val_fraction`) of the captioned videos, drawn with `seed`, is held out.
    """
    folder = _video_folder(videos)
    path = _captions_file(captions)
    rows = read_rows(path)
    by_video = _captions_by_video(rows, folder, path)
    uncaptioned = [v for v in folder.files if v not in by_video]
    explicit = any(row.split is not None for row in rows)
    assignment = _explicit_splits(rows, folder) if explicit else \
        held_out_splits(list(by_video), test_fraction, val_fraction, seed)
    splits = _build_splits(by_video, assignment, folder, path, "split column" if explicit else "held out")
    _log_sizes(splits, folder, path, uncaptioned, explicit, test_fraction, val_fraction, seed)
    return splits


def _video_folder(videos: str | None) -> VideoFolder:
    if videos is None:
        raise ConfigError(f"data.videos is not set: data=custom needs data.videos=<the folder of your videos> "
                          f"and data.captions=<their captions file> ({DOC})")
    root = Path(videos).expanduser()
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise DataNotFoundError(f"data.videos={videos}: {root} {problem}; it should be the folder of your videos "
                                f"({DOC})")
    folder = list_videos(root)
    if not folder.files:
        raise DataNotFoundError(f"data.videos={videos}: no video files under {root} (suffixes "
                                f"{', '.join(VIDEO_SUFFIXES)}; {DOC})")
    return folder


def _captions_file(captions: str | None) -> Path:
    if captions is None:
        raise ConfigError(f"data.captions is not set: data=custom needs data.captions=<a .json, .csv or .jsonl "
                          f"file of captions> ({DOC})")
    path = Path(captions).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"data.captions={captions}: {path} is not a file; it should hold your videos' "
                                f"captions ({DOC})")
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"data.captions={captions}: unknown format {path.suffix or '(no suffix)'!r}; use "
                          f"{', '.join(FORMATS)} ({DOC})")
    return path


def read_rows(path: Path) -> list[Row]:
    """Every caption of a .json, .csv or .jsonl captions file, in file order; AnnotationError if none."""
    reader = {".json": _json_rows, ".csv": _csv_rows, ".jsonl": _jsonl_rows}[path.suffix.lower()]
    rows = reader(path)
    if not rows:
        raise AnnotationError(f"{DATASET}: {path} holds no captions")
    return rows


def _texts(value: Any, where: str) -> list[str]:
    """A caption or a list of captions as written, each a non-empty text."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise AnnotationError(f"{DATASET}: {where}, key 'caption': expected a caption text or a list of them, got "
                              f"{json.dumps(value)[:80]}")
    for text in items:
        if not text.strip():
            raise AnnotationError(f"{DATASET}: {where}, key 'caption': empty caption; write one or remove the row")
    return [t.strip() for t in items]


def _json_rows(path: Path) -> list[Row]:
    data = read_json(path, DATASET)
    if not isinstance(data, dict):
        raise AnnotationError(f"{DATASET}: {path}: expected a JSON object {{video id: caption or [captions]}}, got "
                              f"a {type(data).__name__}")
    rows = []
    for video, value in data.items():
        where = f"{path} key {video!r}"
        if not video or video != video.strip():
            raise AnnotationError(f"{DATASET}: {where}: a video id must be non-empty, without leading or trailing "
                                  "spaces (ids name the video files)")
        rows.extend(Row(video, text, None, where) for text in _texts(value, where))
    return rows


def _csv_rows(path: Path) -> list[Row]:
    records = read_csv(path, ["video", "caption"], DATASET)
    has_split = bool(records) and "split" in records[0]
    rows = []
    for line, record in enumerate(records, start=2):  # line 1 is the header
        video = checked_video_id(record["video"], path, line, DATASET)
        where = f"{path} row {line}"
        split = record["split"].strip() if has_split else None
        rows.extend(Row(video, text, split, where) for text in _texts(record["caption"], where))
    return rows


def _jsonl_rows(path: Path) -> list[Row]:
    rows = []
    for line, text in enumerate(read_text(path, DATASET).splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path} row {line}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise AnnotationError(f"{DATASET}: {where} is not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise AnnotationError(f"{DATASET}: {where}: expected an object with the keys video, caption[, split]")
        for key in ("video", "caption"):
            if key not in record:
                raise AnnotationError(f"{DATASET}: {where} lacks the key {key!r}; its keys: {', '.join(record)}")
        if not isinstance(record["video"], str):
            raise AnnotationError(f"{DATASET}: {where}, key 'video': expected a text, got {record['video']!r}")
        video = checked_video_id(record["video"], path, line, DATASET)
        split = record.get("split")
        split = split.strip() if isinstance(split, str) else split
        rows.extend(Row(video, caption, split, where) for caption in _texts(record["caption"], where))
    return rows


def captions_by_video(path: Path, folder: VideoFolder, videos_key: str = "data.videos") -> dict[str, list[str]]:
    """{video id: its captions} from a .json, .csv or .jsonl captions file; every id must resolve in
    `folder`, named by the option `videos_key` (the folder gallery reads `retrieve.py captions=` with it)."""
    return _captions_by_video(read_rows(path), folder, path, videos_key)


def _captions_by_video(rows: list[Row], folder: VideoFolder, path: Path, videos_key: str = "data.videos"
                       ) -> dict[str, list[str]]:
    """{video id: its captions}, in the order the file first names each video; every id must resolve."""
    by_video: dict[str, list[str]] = {}
    unknown: list[Row] = []
    for row in rows:
        vid = folder.resolve(row.video)
        if vid is None:
            unknown.append(row)
        else:
            by_video.setdefault(vid, []).append(row.caption)
    if unknown:
        first = unknown[0]
        raise AnnotationError(
            f"{DATASET}: {len(unknown)} caption(s) in {path} name videos that are not under {folder.root}; "
            f"first: {first.where}, key 'video': {first.video!r} (looked for {folder.describe_lookup(first.video)}). "
            f"All: {few(sorted({r.video for r in unknown}))}. Ids are paths relative to {videos_key}, with or "
            "without the suffix")
    return by_video


def _explicit_splits(rows: list[Row], folder: VideoFolder) -> dict[str, str]:
    """{video id: split} from the `split` column: a known name on every row, one split per video."""
    assignment: dict[str, tuple[str, str]] = {}  # video id -> (split, where it was first given)
    for row in rows:
        if row.split not in SPLITS:
            shown = "missing" if row.split is None else repr(row.split)
            raise AnnotationError(f"{DATASET}: {row.where}, key 'split': {shown} is not a split name; use one of "
                                  f"{', '.join(SPLITS)} on every row (or no split column: data.test_fraction)")
        vid = folder.resolve(row.video)
        first = assignment.setdefault(vid, (row.split, row.where))
        if first[0] != row.split:
            raise AnnotationError(f"{DATASET}: video {vid!r} is in two splits: {first[0]} at {first[1]} and "
                                  f"{row.split} at {row.where}; a video's captions belong to one split")
    return {vid: split for vid, (split, _) in assignment.items()}


def held_out_splits(video_ids: list[str], test_fraction: float, val_fraction: float, seed: int) -> dict[str, str]:
    """{video id: split}: round(fraction x videos) (at least 1 for a fraction > 0) drawn by `seed` for
    test, then val; the rest train. The draw depends on the set of ids, not on the file's order."""
    n = len(video_ids)
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    if n_test == 0:
        raise AnnotationError(f"{DATASET}: data.test_fraction={test_fraction} puts no video in the test split; "
                              "give a fraction > 0 (or a split column)")
    if n - n_test - n_val < 1:
        raise AnnotationError(f"{DATASET}: the train split has no videos: {n} captioned video(s), {n_test} held out "
                              f"for test (data.test_fraction={test_fraction}) and {n_val} for val "
                              f"(data.val_fraction={val_fraction}); add videos or lower the fractions")
    order = sorted(video_ids)
    random.Random(seed).shuffle(order)
    chosen = {vid: "test" for vid in order[:n_test]}
    chosen.update({vid: "val" for vid in order[n_test:n_test + n_val]})
    return {vid: chosen.get(vid, "train") for vid in video_ids}


def _build_splits(by_video: dict[str, list[str]], assignment: dict[str, str], folder: VideoFolder, path: Path,
                  rule: str) -> dict[str, Split]:
    """One Split per split name present, videos in the order the captions file first names them."""
    info = {"dataset": "custom", "videos_from": str(folder.root), "captions_from": str(path), "split_rule": rule}
    splits = {}
    for name in SPLITS:
        members = {vid: texts for vid, texts in by_video.items() if assignment[vid] == name}
        if members:
            splits[name] = grouped_split(name, members, {vid: folder.files[vid] for vid in members}, dict(info))
    return splits


def _log_sizes(splits: dict[str, Split], folder: VideoFolder, path: Path, uncaptioned: list[str], explicit: bool,
               test_fraction: float, val_fraction: float, seed: int) -> None:
    rule = "from the split column" if explicit else \
        f"held out (data.test_fraction={test_fraction}, data.val_fraction={val_fraction}, data.split_seed={seed})"
    sizes = ", ".join(f"{s.name} {s.num_videos} videos / {s.num_captions} captions" for s in splits.values())
    log.info("%s: %s with %s: splits %s: %s", DATASET, folder.root, path, rule, sizes)
    if uncaptioned:
        log.info("%s: %d of %d videos under %s have no caption and are in no split, e.g. %s", DATASET,
                 len(uncaptioned), len(folder.files), folder.root, few(uncaptioned, 3))
