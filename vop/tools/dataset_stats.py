"""Annotation-level and file-level counts of a dataset's splits (scripts/dataset_stats.py).

Works with no video downloaded: the annotation counts come from the parsers, and every video is
then simply counted as missing.
"""
from __future__ import annotations

import os

import numpy as np

from vop.data.split import Split


def split_stats(split: Split) -> dict:
    """Counts for one split: videos annotated / present / missing, queries, captions per video."""
    present = sum(os.path.isfile(p) for p in split.video_paths)
    per_video = np.bincount(np.asarray(split.caption_video, dtype=np.int64), minlength=split.num_videos)
    words = [len(c.split()) for c in split.captions]
    return {
        "annotated_videos": split.num_videos,
        "queries": split.num_captions,
        "present_videos": present,
        "missing_videos": split.num_videos - present,
        "captions_per_video": _summary(per_video),
        "words_per_query": {"mean": round(float(np.mean(words)), 2) if words else 0.0,
                            "max": max(words, default=0)},
        "video_dir_example": str(split.video_paths[0]) if split.video_paths else None,
    }


def _summary(counts: np.ndarray) -> dict:
    if counts.size == 0:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": int(counts.min()), "mean": round(float(counts.mean()), 3), "max": int(counts.max())}


def dataset_stats(splits: dict[str, Split]) -> dict[str, dict]:
    return {name: split_stats(split) for name, split in splits.items()}
