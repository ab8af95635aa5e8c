"""A user's own collection as tests write it: real mp4 / mkv / avi files in subfolders (names with
spaces), one corrupt file, and the same captions as .json, .csv and .jsonl."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from vop.data.synthetic import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES, VideoSpec, caption, render, write_mp4

FOLDERS = ("beach", "city trip", "road/night")
CONTAINERS = (".mp4", ".mkv", ".avi")
BROKEN = "city trip/broken clip.mp4"  # captioned, in the training split: skipped and counted


def spec(i: int) -> VideoSpec:
    """Clip i: its own shape, colour, background and direction (distinct for i < 640)."""
    shape, colour = SHAPES[i % 4], list(COLOURS)[(i // 4) % 8]
    background, direction = list(BACKGROUNDS)[(i // 2 + i) % 5], list(DIRECTIONS)[(i // 32 + i) % 4]
    return VideoSpec(f"clip {i}", shape, colour, background, direction, 7.0, (32.0, 24.0), 2.5)


def name(i: int) -> str:
    """Clip i's file, relative to the folder; captions name it without the suffix for odd i."""
    return f"{FOLDERS[(i // 3) % 3]}/clip {i:02d}{CONTAINERS[i % 3]}"


def write_collection(root: Path, num_videos: int = 40, num_test: int = 10) -> dict[str, Path]:
    """`root/my_clips/` and its captions as `root/my_clips.{json,csv,jsonl}` (README "Your own videos");
    the csv and jsonl give the last `num_test` clips the split `test`, the json has no split (the
    parser holds videos out)."""
    videos = root / "my_clips"
    rows = []
    for i in range(num_videos):
        path = videos / name(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, render(spec(i), 12, 64, 48), fps=8)
        video = name(i) if i % 2 == 0 else name(i).rsplit(".", 1)[0]
        split = "test" if i >= num_videos - num_test else "train"
        rows += [{"video": video, "caption": caption(spec(i), t), "split": split} for t in (0, 1)]
    (videos / BROKEN).write_bytes(b"\x00\x00\x00\x18ftypmp42 this file was cut off in the copy")
    rows.append({"video": BROKEN, "caption": "a clip that never finished copying", "split": "train"})
    by_video: dict[str, list[str]] = {}
    for row in rows:
        by_video.setdefault(row["video"], []).append(row["caption"])
    (root / "my_clips.json").write_text(json.dumps(by_video, indent=1))
    with open(root / "my_clips.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["video", "caption", "split"])
        writer.writeheader()
        writer.writerows(rows)
    (root / "my_clips.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"videos": videos, **{suffix: root / f"my_clips.{suffix}" for suffix in ("json", "csv", "jsonl")}}
