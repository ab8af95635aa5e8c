"""A sample collection laid out as a user's own (README "Your own videos"): small synthetic clips
(a coloured shape moving over a background, captioned as in data=synthetic) as mp4, mkv and avi
files in three subfolders whose names have spaces, one file cut off in the copy (captioned, in
the training split: skipped and counted), and the same captions as `.csv`, `.jsonl` (with a
`split` column: the last clips are the test split) and `.json` (without: a seeded share is held out).

`python scripts/sample_collection.py out=data/my_clips` writes `data/my_clips/` and
`data/my_clips.{csv,jsonl,json}`. The clips are learnable (the tiny CLIP trained on 30 of them
ranks the 10 test clips well above chance), so every step of the README's block shows something.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from vop.data.synthetic import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES, VideoSpec, caption, render, write_mp4
from vop.errors import InputError

FOLDERS = ("beach", "city trip", "road/night")
CONTAINERS = (".mp4", ".mkv", ".avi")
BROKEN = "city trip/broken clip.mp4"  # a copy cut short
CAPTION_FORMATS = ("csv", "jsonl", "json")


def spec(i: int) -> VideoSpec:
    """Clip i: its own shape, colour, background and direction (distinct for i < 640)."""
    shape, colour = SHAPES[i % 4], list(COLOURS)[(i // 4) % 8]
    background, direction = list(BACKGROUNDS)[(i // 2 + i) % 5], list(DIRECTIONS)[(i // 32 + i) % 4]
    return VideoSpec(f"clip {i}", shape, colour, background, direction, 7.0, (32.0, 24.0), 2.5)


def name(i: int) -> str:
    """Clip i's file, relative to the folder; the captions name it without its suffix for odd i."""
    return f"{FOLDERS[(i // 3) % 3]}/clip {i:02d}{CONTAINERS[i % 3]}"


def caption_rows(num_videos: int, num_test: int) -> list[dict[str, str]]:
    rows = []
    for i in range(num_videos):
        video = name(i) if i % 2 == 0 else name(i).rsplit(".", 1)[0]
        split = "test" if i >= num_videos - num_test else "train"
        rows += [{"video": video, "caption": caption(spec(i), t), "split": split} for t in (0, 1)]
    return rows + [{"video": BROKEN, "caption": "a clip that never finished copying", "split": "train"}]


def write_collection(out: str | Path, num_videos: int = 40, num_test: int = 10) -> dict[str, Path]:
    """Write the collection: {"videos": folder, "csv" | "jsonl" | "json": captions file}. A folder
    this function wrote before with the same sizes is left as it is; any other existing one is refused."""
    if not 0 < num_test < num_videos:
        raise InputError(f"num_test={num_test} must be between 0 and num_videos={num_videos}")
    videos = Path(out).expanduser()
    files = {"videos": videos, **{f: videos.with_name(f"{videos.name}.{f}") for f in CAPTION_FORMATS}}
    rows = caption_rows(num_videos, num_test)
    listing = sorted([name(i) for i in range(num_videos)] + [BROKEN])
    if videos.exists():
        present = sorted(str(p.relative_to(videos)) for p in videos.rglob("*") if p.is_file())
        if present == listing and all(files[f].is_file() for f in CAPTION_FORMATS) and \
                files["csv"].read_text() == _csv_text(rows):
            return files  # written before: kept
        raise InputError(f"out={videos} exists and is not this sample collection: give out=<a new folder>")
    for i in range(num_videos):
        path = videos / name(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, render(spec(i), 12, 64, 48), fps=8)
    (videos / BROKEN).write_bytes(b"\x00\x00\x00\x18ftypmp42 this file was cut off in the copy")
    files["csv"].write_text(_csv_text(rows))
    files["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_video: dict[str, list[str]] = {}
    for row in rows:
        by_video.setdefault(row["video"], []).append(row["caption"])
    files["json"].write_text(json.dumps(by_video, indent=1) + "\n")
    return files


def _csv_text(rows: list[dict[str, str]]) -> str:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, ["video", "caption", "split"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()
