"""LSMDC (the LSMDC 2016 retrieval challenge files): every (clip, sentence) pair.

The three csv files are tab-separated with no header and 6 fields: clip_id, start_aligned,
end_aligned, start_extracted, end_extracted, sentence. A clip id can repeat in training (several
sentences for one clip); every pair is kept. Clips live in per-movie folders:
`videos/<movie>/<clip_id>.avi`, where <movie> is the clip id without its trailing time range.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from vop.data.annotations.common import (
    AnnotationError,
    annotation_and_video_dirs,
    grouped_split,
    read_text,
    require_file,
    checked_video_id,
)
from vop.data.split import Split

DATASET = "LSMDC"
SOURCE = "the LSMDC 2016 challenge annotations (sites.google.com/site/describingmovies, after signing its form)"
FILES = {
    "train": "LSMDC16_annos_training.csv",
    "val": "LSMDC16_annos_val.csv",
    "test": "LSMDC16_challenge_1000_publictect.csv",
}
LAYOUT = """\
<data.root>/
  annotations/
    LSMDC16_annos_training.csv  LSMDC16_annos_val.csv  LSMDC16_challenge_1000_publictect.csv
  videos/
    <movie>/<clip_id>.avi      e.g. 0001_American_Beauty/0001_American_Beauty_00.00.51.926-00.00.54.129.avi"""
NUM_FIELDS = 6
# The trailing "_HH.MM.SS.mmm-HH.MM.SS.mmm" of a clip id; what precedes it names the movie folder.
_TIME_RANGE = re.compile(r"_[0-9.]+-[0-9.]+$")


def load_lsmdc(
    root: str | Path,
    annotation_dir: str | Path | None = None,
    video_dir: str | Path | None = None,
    video_ext: str = ".avi",
    files: dict[str, str] | None = None,
) -> dict[str, Split]:
    """Return {"train", "val", "test"} as (clip, sentence) pairs grouped by clip."""
    ann, videos = annotation_and_video_dirs(root, annotation_dir, video_dir, DATASET, LAYOUT)
    return {name: _split(name, ann / file, videos, video_ext) for name, file in (files or FILES).items()}


def movie_of(clip_id: str) -> str:
    """`0001_American_Beauty_00.00.51.926-00.00.54.129` -> `0001_American_Beauty`."""
    movie = _TIME_RANGE.sub("", clip_id)
    # Ids without a time range fall back to dropping the last "_" field, the rule peers use.
    return movie if movie != clip_id else clip_id.rsplit("_", 1)[0]


def _split(name: str, path: Path, video_dir: Path, video_ext: str) -> Split:
    require_file(path, f"the LSMDC {name} file ({path.name}, {SOURCE})", DATASET, LAYOUT)
    captions: dict[str, list[str]] = {}
    text = io.StringIO(read_text(path, DATASET), newline="")
    # QUOTE_NONE: sentences contain quotes that are text, not csv quoting.
    for line_no, row in enumerate(csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != NUM_FIELDS:
            raise AnnotationError(f"{DATASET}: {path} line {line_no}: expected {NUM_FIELDS} tab-separated "
                                  f"fields (clip_id, 4 times, sentence), got {len(row)}")
        clip_id, sentence = checked_video_id(row[0], f"{path} row {line_no}", DATASET), row[-1].strip()
        captions.setdefault(clip_id, []).append(sentence)
    if not captions:
        raise AnnotationError(f"{DATASET}: {path} holds no (clip, sentence) rows")
    paths = {clip: video_dir / movie_of(clip) / f"{clip}{video_ext}" for clip in captions}
    return grouped_split(name, captions, paths, {"dataset": "lsmdc", "captions_from": str(path)})
