"""MSR-VTT: the 9k (or 7k) training split and the 1k-A test split, from the standard files.

Train pairs every listed video with each of its captions in MSRVTT_data.json (~20 per video);
test is the 1k-A protocol of MSRVTT_JSFUSION_test.csv, one caption per video.
"""
from __future__ import annotations

from pathlib import Path

from vop.data.annotations.common import (
    AnnotationError,
    few,
    read_csv,
    read_json,
    require_dir,
    require_file,
    checked_video_id,
)
from vop.data.split import Split

DATASET = "MSR-VTT"
TEST_CSV = "MSRVTT_JSFUSION_test.csv"
CAPTIONS_JSON = "MSRVTT_data.json"
SOURCE = "part of the MSR-VTT annotation download used by CLIP4Clip / X-Pool"
LAYOUT = """\
<data.root>/
  annotations/
    MSRVTT_train.9k.csv        (or MSRVTT_train.7k.csv)
    MSRVTT_JSFUSION_test.csv
    MSRVTT_data.json
  videos/
    video0.mp4 ... video9999.mp4"""


def load_msrvtt(
    root: str | Path,
    train_csv: str = "MSRVTT_train.9k.csv",
    annotation_dir: str | Path | None = None,
    video_dir: str | Path | None = None,
) -> dict[str, Split]:
    """Return {"train": ..., "test": ...} for MSR-VTT; video files are not checked here.

    `annotation_dir` / `video_dir` default to `root/annotations` and `root/videos`.
    """
    root = Path(root).expanduser()
    if annotation_dir is None or video_dir is None:
        require_dir(root, DATASET, LAYOUT)  # the root is only needed for what is not overridden
    ann = Path(annotation_dir).expanduser() if annotation_dir is not None else root / "annotations"
    videos = Path(video_dir).expanduser() if video_dir is not None else root / "videos"
    return {
        "train": _train_split(ann / train_csv, ann / CAPTIONS_JSON, videos),
        "test": _test_split(ann / TEST_CSV, videos),
    }


def _train_split(csv_path: Path, json_path: Path, video_dir: Path) -> Split:
    require_file(csv_path, f"the MSR-VTT training video list ({csv_path.name}, {SOURCE})", DATASET, LAYOUT)
    require_file(json_path, f"the MSR-VTT captions ({CAPTIONS_JSON}, {SOURCE})", DATASET, LAYOUT)
    # dict.fromkeys keeps csv order and drops a repeated id, which would otherwise duplicate pairs.
    rows = read_csv(csv_path, ["video_id"], DATASET)
    ids = (checked_video_id(row["video_id"], f"{csv_path} row {line}", DATASET)
           for line, row in enumerate(rows, start=2))
    video_ids = list(dict.fromkeys(ids))
    by_video = _captions_by_video(json_path, set(video_ids))
    uncaptioned = [v for v in video_ids if not by_video.get(v)]
    if uncaptioned:
        raise AnnotationError(
            f"{DATASET}: {len(uncaptioned)} training video(s) listed in {csv_path} have no caption in "
            f"{json_path}: {few(uncaptioned)}. The two files do not match; re-download the annotations."
        )
    captions: list[str] = []
    caption_video: list[int] = []
    for index, video_id in enumerate(video_ids):
        captions.extend(by_video[video_id])
        caption_video.extend([index] * len(by_video[video_id]))
    info = {"dataset": "msrvtt", "videos_from": str(csv_path), "captions_from": str(json_path)}
    return Split("train", video_ids, _paths(video_dir, video_ids), captions, caption_video, info)


def _captions_by_video(json_path: Path, wanted: set[str]) -> dict[str, list[str]]:
    """Captions of the `wanted` videos, each video's in the json's sentence order."""
    data = read_json(json_path, DATASET)
    sentences = data.get("sentences") if isinstance(data, dict) else None
    if not isinstance(sentences, list):
        raise AnnotationError(f"{DATASET}: {json_path} has no 'sentences' list; is it MSRVTT_data.json?")
    by_video: dict[str, list[str]] = {}
    try:
        for sentence in sentences:
            if sentence["video_id"] in wanted:
                by_video.setdefault(sentence["video_id"], []).append(sentence["caption"].strip())
    except (KeyError, TypeError, AttributeError) as err:
        raise AnnotationError(
            f"{DATASET}: {json_path}: a sentence lacks 'video_id' or a text 'caption' ({err!r})"
        ) from err
    return by_video


def _test_split(csv_path: Path, video_dir: Path) -> Split:
    require_file(csv_path, f"the MSR-VTT 1k-A test list ({TEST_CSV}, {SOURCE})", DATASET, LAYOUT)
    rows = read_csv(csv_path, ["video_id", "sentence"], DATASET)
    index: dict[str, int] = {}  # video id -> position; tolerates a csv with several rows per video
    captions: list[str] = []
    caption_video: list[int] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        vid = checked_video_id(row["video_id"], f"{csv_path} row {line}", DATASET)
        caption_video.append(index.setdefault(vid, len(index)))
        captions.append(row["sentence"].strip())
    video_ids = list(index)
    info = {"dataset": "msrvtt", "videos_from": str(csv_path), "captions_from": str(csv_path)}
    return Split("test", video_ids, _paths(video_dir, video_ids), captions, caption_video, info)


def _paths(video_dir: Path, video_ids: list[str]) -> list[Path]:
    return [video_dir / f"{video_id}.mp4" for video_id in video_ids]
