"""A user's own videos and captions (`data=custom data.videos=<folder> data.captions=<file>`).

The captions file is one of (docs/own_videos.md):
- `.json`: `{video id: caption or [captions]}` (what `retrieve.py captions=` reads);
- `.csv`: a header with the columns `video`, `caption` and optionally `split`;
- `.jsonl`: one object per line with the keys `video`, `caption` and optionally `split`.

The rows and their lines come from vop/data/annotations/caption_rows.py. Video ids are paths relative
to the videos folder, with or without the suffix; they resolve by the one rule of
vop/data/video_files.py, shared with the folder gallery (an unknown one is an error naming its line
and the nearest file name); a row repeating an earlier one is kept once, counted in a WARNING.
Splits come from the `split` column (train / val / test), or, without one, from a seeded held-out
fraction of the videos: all captions of a video land in one split. A video without a caption is
counted, logged, in no split.
"""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from vop.data.annotations.caption_rows import DATASET, FORMATS, Row, read_rows
from vop.data.annotations.common import AnnotationError, DataNotFoundError, few, grouped_split
from vop.data.caption_preview import caption_preview
from vop.data.split import Split
from vop.data.video_files import VIDEO_SUFFIXES, VideoFolder, list_videos
from vop.errors import ConfigError

log = logging.getLogger(__name__)

DOC = "docs/own_videos.md"
SPLITS = ("train", "val", "test")
SHOWN_UNKNOWN = 3  # unknown video ids an error shows, each with its line and the nearest file name


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
    rows = known_rows(read_rows(path), folder, path)
    by_video = _captions_by_video(rows)
    uncaptioned = [v for v in folder.files if v not in by_video]
    explicit = any(row.split is not None for _, row in rows)
    assignment = _explicit_splits(rows) if explicit else \
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


def captions_by_video(path: Path, folder: VideoFolder, videos_key: str = "data.videos") -> dict[str, list[str]]:
    """{video id: its captions} from a .json, .csv or .jsonl captions file; every id must resolve in
    `folder`, named by the option `videos_key` (the folder gallery reads `retrieve.py captions=` with it)."""
    return _captions_by_video(known_rows(read_rows(path), folder, path, videos_key))


def known_rows(rows: list[Row], folder: VideoFolder, path: Path, videos_key: str = "data.videos"
               ) -> list[tuple[str, Row]]:
    """(video id, row) of each row, the ids resolved in `folder`, a row that repeats an earlier one (same
    video, caption and split) left out and counted in one WARNING; AnnotationError naming the file, the
    lines and the nearest file name when a row names a video that is not there."""
    resolved = [(folder.resolve(row.video), row) for row in rows]
    unknown = [row for vid, row in resolved if vid is None]
    if unknown:
        raise AnnotationError(unknown_videos(unknown, folder, path, videos_key))
    first: dict[tuple[str, str, str | None], Row] = {}
    kept, repeats = [], []
    for vid, row in resolved:
        earlier = first.setdefault((vid, row.caption, row.split), row)
        if earlier is row:
            kept.append((vid, row))
        else:
            caption = json.dumps(caption_preview(row.caption), ensure_ascii=False)
            repeats.append(f"line {row.line} repeats line {earlier.line} ({vid!r}: {caption})")
    if repeats:
        log.warning("%s: %s: %d row(s) repeat an earlier row (the same video, caption and split) and are kept once: "
                    "%s", DATASET, path, len(repeats), few(repeats, 3))
    return kept


def unknown_videos(rows: list[Row], folder: VideoFolder, path: Path, videos_key: str) -> str:
    """The message for `rows` naming videos that are not in `folder`: for each of the first ids, where it
    is first written, what was looked for and the nearest file name (difflib), then how many in all."""
    by_written: dict[str, list[Row]] = {}
    for row in rows:
        by_written.setdefault(row.video, []).append(row)
    shown = []
    for written, at in list(by_written.items())[:SHOWN_UNKNOWN]:
        more = f" (and {len(at) - 1} more row(s))" if len(at) > 1 else ""
        nearest = folder.nearest(written)
        hint = f"did you mean {nearest!r}?" if nearest else "no file has a close name"
        shown.append(f"{at[0].where}{more}: {written!r} (looked for {folder.describe_lookup(written)}; {hint})")
    others = f"; ... ({len(by_written)} ids in all)" if len(by_written) > SHOWN_UNKNOWN else ""
    return (f"{DATASET}: {len(rows)} caption row(s) of {path} name videos that are not under {folder.root}: "
            f"{'; '.join(shown)}{others}. Ids are paths relative to {videos_key}, with or without the suffix")


def _captions_by_video(rows: list[tuple[str, Row]]) -> dict[str, list[str]]:
    """{video id: its captions}, in the order the file first names each video."""
    by_video: dict[str, list[str]] = {}
    for vid, row in rows:
        by_video.setdefault(vid, []).append(row.caption)
    return by_video


def _explicit_splits(rows: list[tuple[str, Row]]) -> dict[str, str]:
    """{video id: split} from the `split` column: a known name on every row, one split per video."""
    assignment: dict[str, tuple[str, str]] = {}  # video id -> (split, where it was first given)
    for vid, row in rows:
        if row.split not in SPLITS:
            shown = "missing" if row.split is None else caption_preview(repr(row.split))
            raise AnnotationError(f"{DATASET}: {row.where}, key 'split': {shown} is not a split name; use one of "
                                  f"{', '.join(SPLITS)} on every row (or no split column: data.test_fraction)")
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
