"""DiDeMo as paragraph-to-video retrieval: each video's descriptions form one query.

`{train,val,test}_data.json` are lists of {video, description, times, ...}, several entries per
video (one per described moment); the query is a video's descriptions joined with spaces in file
order, over the whole video. An optional `{split}_list.txt` (one video file name per line)
restricts a split to the videos listed, as peers do for the videos they could download.
With `queries="moments"` each description is its own query with the moment it describes
(`Split.caption_spans`, seconds: the span most annotators gave, the first of equals; every annotator's
span in `Split.caption_times`), for moment retrieval (docs/retrieval.md).
`load_didemo_moments` reads the same files entry by entry with each annotator's moment (`times`), for
moment localisation (vop/metrics/moments.py).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vop.data.annotations.common import (
    AnnotationError,
    VideoFinder,
    annotation_and_video_dirs,
    check_queries,
    grouped_split,
    paragraph,
    read_json,
    read_text,
    require_file,
)
from vop.data.split import Split

SEGMENTS = 6  # 5-second segments per video: a moment is (first, last) with 0 <= first <= last < 6
SECONDS = 5.0

DATASET = "DiDeMo"
SOURCE = "the DiDeMo annotations (github.com/LisaAnne/LocalizingMoments, folder data/)"
LAYOUT = """\
<data.root>/
  annotations/
    train_data.json  val_data.json  test_data.json
    train_list.txt   val_list.txt   test_list.txt   (optional: the videos to keep)
  videos/
    <name as in the json's "video">  (or the same name with another extension, e.g. .mp4)"""


def load_didemo(
    root: str | Path,
    annotation_dir: str | Path | None = None,
    video_dir: str | Path | None = None,
    splits: tuple[str, ...] = ("train", "val", "test"),
    queries: str = "paragraphs",
) -> dict[str, Split]:
    """Return {"train", "val", "test"}: one paragraph per video (queries="paragraphs") or one query per
    described moment (queries="moments"), videos restricted by `{split}_list.txt` if present."""
    check_queries(queries, DATASET)
    ann, videos = annotation_and_video_dirs(root, annotation_dir, video_dir, DATASET, LAYOUT)
    finder = VideoFinder(videos)
    return {name: _split(name, ann, finder, queries) for name in splits}


def _split(name: str, ann: Path, finder: VideoFinder, queries: str = "paragraphs") -> Split:
    path = require_file(ann / f"{name}_data.json", f"the {name} split of {SOURCE}", DATASET, LAYOUT)
    list_path = ann / f"{name}_list.txt"
    keep = None
    if list_path.is_file():
        keep = {line.strip() for line in read_text(list_path, DATASET).splitlines() if line.strip()}
    restricted = str(list_path) if keep is not None else None
    if queries == "moments":
        return _moment_split(name, path, finder, keep, restricted)
    sentences = _sentences_by_video(path)
    if keep is not None:
        sentences = {video: s for video, s in sentences.items() if video in keep}
    captions = {video: [paragraph(s)] for video, s in sentences.items()}
    paths = {video: _find(finder, video) for video in captions}
    info = {"dataset": "didemo", "captions_from": str(path), "paragraphs": True, "restricted_by": restricted}
    return grouped_split(name, captions, paths, info)


def _moment_split(name: str, path: Path, finder: VideoFinder, keep: set[str] | None, restricted: str | None
                  ) -> Split:
    """One query per entry (description), its span the one most annotators gave, in seconds."""
    moments = [m for m in load_didemo_moments(path) if keep is None or m.video in keep]
    videos = list(dict.fromkeys(m.video for m in moments))
    row = {video: i for i, video in enumerate(videos)}
    info = {"dataset": "didemo", "captions_from": str(path), "paragraphs": False, "restricted_by": restricted}
    return Split(name, videos, [_find(finder, v) for v in videos], [m.description for m in moments],
                 [row[m.video] for m in moments], info, caption_spans=[agreed_seconds(m.times) for m in moments],
                 caption_times=[[segment_seconds(t) for t in m.times] for m in moments])


def agreed_seconds(times: tuple[tuple[int, int], ...]) -> tuple[float, float]:
    """The span most annotators gave (the first given of equally common ones), in seconds: segment i is
    [5 i, 5 (i + 1))."""
    return segment_seconds(Counter(times).most_common(1)[0][0])


def segment_seconds(span: tuple[int, int]) -> tuple[float, float]:
    """A (first, last) span of 5-second segments in seconds: [5 first, 5 (last + 1))."""
    return SECONDS * span[0], SECONDS * (span[1] + 1)


def _sentences_by_video(path: Path) -> dict[str, list[str]]:
    data = read_json(path, DATASET)
    if not isinstance(data, list):
        raise AnnotationError(f"{DATASET}: {path} should be a list of {{video, description, ...}} entries")
    by_video: dict[str, list[str]] = {}
    for i, entry in enumerate(data):
        video = entry.get("video") if isinstance(entry, dict) else None
        description = entry.get("description") if isinstance(entry, dict) else None
        if not isinstance(video, str) or not isinstance(description, str):
            raise AnnotationError(f"{DATASET}: {path}: entry {i} lacks a text 'video' or 'description'")
        by_video.setdefault(video, []).append(description)
    empty = [v for v, s in by_video.items() if not paragraph(s)]
    if empty:
        raise AnnotationError(f"{DATASET}: {path}: video {empty[0]!r} has only empty descriptions")
    return by_video


@dataclass(frozen=True)
class DidemoMoment:
    """One description of one moment: the video's file name, the text, each annotator's (first, last) segments."""

    video: str
    description: str
    times: tuple[tuple[int, int], ...]


def load_didemo_moments(path: str | Path) -> list[DidemoMoment]:
    """Every entry of a `{split}_data.json` in file order, with its `times` checked (moment localisation,
    vop/metrics/moments.py); entries are not grouped by video."""
    path = Path(path)
    data = read_json(require_file(path, f"a split of {SOURCE}", DATASET, LAYOUT), DATASET)
    if not isinstance(data, list):
        raise AnnotationError(f"{DATASET}: {path} should be a list of {{video, description, times, ...}} entries")
    return [_moment(entry, f"{path} entry {i}") for i, entry in enumerate(data)]


def _moment(entry: object, where: str) -> DidemoMoment:
    if not isinstance(entry, dict) or not isinstance(entry.get("video"), str) \
            or not isinstance(entry.get("description"), str):
        raise AnnotationError(f"{DATASET}: {where} lacks a text 'video' or 'description'")
    times = entry.get("times")
    ok = isinstance(times, list) and times and all(
        isinstance(t, list) and len(t) == 2 and all(type(v) is int for v in t) and 0 <= t[0] <= t[1] < SEGMENTS
        for t in times)
    if not ok:
        raise AnnotationError(f"{DATASET}: {where}: 'times' must be a non-empty list of [first, last] segment "
                              f"indices with 0 <= first <= last <= {SEGMENTS - 1}, got {times!r}")
    return DidemoMoment(entry["video"], entry["description"], tuple((t[0], t[1]) for t in times))


def _find(finder: VideoFinder, video: str) -> Path:
    """The exact file name if present; else the same stem in another container (copies re-encoded to .mp4)."""
    exact = finder.folder / video
    other = finder.by_stem.get(os.path.splitext(video)[0])
    return finder.folder / other if other is not None and not exact.is_file() else exact
