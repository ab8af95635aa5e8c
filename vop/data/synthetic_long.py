"""Long synthetic videos for moment retrieval: synthetic clips (vop/data/synthetic.py) joined end to end.

Each long video is `clips` clips in a row, each a coloured shape moving over a background for a
random number of frames (min_frames..max_frames, so clip boundaries do not fall on a fixed grid);
each clip's caption is a caption of the long video, with the clip's [start, end] seconds as its
ground-truth span (`Split.caption_spans`). Every clip of the data set has its own (shape, colour,
background, direction) up to 640 clips, so a caption names one moment of one video.
It has one split, `test` (nothing trains on it): a model trained on data=synthetic is measured
on it with `retrieve.py action=build ... moments.window=...` then `action=evaluate`.

Layout under `root/<key>/`: test/<video_id>.mp4 and captions.json, written under a temporary
name and renamed when complete (as data=synthetic).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from vop.data.split import Split
from vop.data.synthetic import (TEMPLATES, attribute_combinations, caption, random_spec, remove_stale_temps, render,
                                temp_name, write_mp4)

log = logging.getLogger(__name__)
GENERATOR_VERSION = 1  # bump when the pictures, captions or spans change


def long_plan(num_videos: int, clips: int, seed: int, min_frames: int, max_frames: int, width: int, height: int
              ) -> list[dict]:
    """Per long video: its id and its clips (spec, frame count, caption), from one seeded RNG."""
    rng = np.random.default_rng([seed, 7])  # its own stream: not data=synthetic's videos
    combos = iter(attribute_combinations(num_videos * clips, rng))
    plan = []
    for v in range(num_videos):
        parts = []
        for c in range(clips):
            frames = int(rng.integers(min_frames, max_frames + 1))
            spec = random_spec(f"long{v:03d}_{c}", next(combos), frames, width, height, rng)
            parts.append((spec, frames, caption(spec, int(rng.integers(len(TEMPLATES))))))
        plan.append({"video_id": f"long{v:03d}", "clips": parts})
    return plan


def _generate(folder: Path, plan: list[dict], params: dict) -> None:
    (folder / "test").mkdir(parents=True)
    index: dict = {"params": params, "test": []}
    for video in plan:
        pictures, clips, start = [], [], 0
        for spec, frames, text in video["clips"]:
            pictures.append(render(spec, frames, params["width"], params["height"]))  # [frames, H, W, 3]
            clips.append({"caption": text, "start": start / params["fps"], "end": (start + frames) / params["fps"],
                          "attributes": spec.attributes})
            start += frames
        write_mp4(folder / "test" / f"{video['video_id']}.mp4", np.concatenate(pictures), params["fps"])
        index["test"].append({"video_id": video["video_id"], "clips": clips})
    (folder / "captions.json").write_text(json.dumps(index, indent=1))


def _split(folder: Path) -> Split:
    videos = json.loads((folder / "captions.json").read_text())["test"]
    clips = [(v, c) for v, video in enumerate(videos) for c in video["clips"]]
    return Split("test", [v["video_id"] for v in videos], [folder / "test" / f"{v['video_id']}.mp4" for v in videos],
                 [c["caption"] for _, c in clips], [v for v, _ in clips],
                 {"dataset": "synthetic_long", "root": str(folder)},
                 caption_spans=[(c["start"], c["end"]) for _, c in clips])


def load_synthetic_long(root: str | Path, num_videos: int = 20, clips: int = 5, seed: int = 0, min_frames: int = 16,
                        max_frames: int = 32, width: int = 160, height: int = 120, fps: int = 8) -> dict[str, Split]:
    """Generate (once) and load the long videos -> {"test": Split} with caption_spans."""
    if num_videos < 1 or clips < 1:
        raise ValueError(f"load_synthetic_long: num_videos and clips must be >= 1, got {num_videos}, {clips}")
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"load_synthetic_long: need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if width % 2 or height % 2 or min(width, height) < 32 or fps < 1:
        raise ValueError(f"load_synthetic_long: width and height even and >= 32, fps >= 1; got {width}x{height} "
                         f"at {fps}")
    root = Path(root)
    key = (f"long_v{GENERATOR_VERSION}_n{num_videos}x{clips}_f{min_frames}-{max_frames}_{width}x{height}_{fps}fps"
           f"_s{seed}")
    folder = root / key
    if (folder / "captions.json").is_file():
        return {"test": _split(folder)}
    if folder.exists():
        raise FileExistsError(f"synthetic_long: {folder} exists but has no captions.json; delete it to regenerate")
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root, key)
    temp = root / temp_name(key)
    shutil.rmtree(temp, ignore_errors=True)
    params = dict(num_videos=num_videos, clips=clips, seed=seed, min_frames=min_frames, max_frames=max_frames,
                  width=width, height=height, fps=fps, version=GENERATOR_VERSION)
    try:
        _generate(temp, long_plan(num_videos, clips, seed, min_frames, max_frames, width, height), params)
    except BaseException:  # incl. KeyboardInterrupt: leave no half-written folder behind
        shutil.rmtree(temp, ignore_errors=True)
        raise
    try:
        temp.rename(folder)
    except OSError:  # another process finished first: keep its copy
        if not (folder / "captions.json").is_file():
            raise
        shutil.rmtree(temp, ignore_errors=True)
    log.info("synthetic_long: generated %d videos of %d clips into %s", num_videos, clips, folder)
    return {"test": _split(folder)}
