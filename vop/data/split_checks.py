"""What a split must hold before it is used: videos, and a caption text for every query.

Evaluation refuses an empty split or an empty caption (a blank query would still be ranked and
counted); training drops empty captions, counting them in a warning, and refuses a split with no
pair left.
"""
from __future__ import annotations

import logging

from vop.data.annotations.common import AnnotationError, few
from vop.data.split import Split

log = logging.getLogger(__name__)


def _source(split: Split) -> str:
    return split.info.get("captions_from") or split.info.get("videos_from") or f"split {split.name}"


def blank_captions(split: Split) -> list[int]:
    return [i for i, text in enumerate(split.captions) if not text.strip()]


def checked_test_split(split: Split) -> Split:
    """The split unchanged, or AnnotationError naming the file (empty split, blank captions)."""
    if split.num_videos == 0 or split.num_captions == 0:
        raise AnnotationError(f"the {split.name} split read from {_source(split)} has {split.num_videos} videos and "
                              f"{split.num_captions} captions: nothing to evaluate. Is the file complete (more than "
                              "its header)?")
    blank = blank_captions(split)
    if blank:
        videos = [split.video_ids[split.caption_video[i]] for i in blank]
        raise AnnotationError(f"the {split.name} split read from {_source(split)} has {len(blank)} empty caption(s), "
                              f"of video(s) {few(videos)}: an empty query cannot be evaluated; fix or remove them")
    return split


def checked_train_split(split: Split) -> Split:
    """The split without its blank captions (counted in a warning); AnnotationError if none is left."""
    blank = set(blank_captions(split))
    if blank:
        keep = [i for i in range(split.num_captions) if i not in blank]
        log.warning("the %s split read from %s: %d empty caption(s) skipped (of %d), e.g. of video %s",
                    split.name, _source(split), len(blank), split.num_captions,
                    split.video_ids[split.caption_video[min(blank)]])
        split = Split(split.name, split.video_ids, split.video_paths, [split.captions[i] for i in keep],
                      [split.caption_video[i] for i in keep], {**split.info, "empty_captions_skipped": len(blank)},
                      None if split.caption_spans is None else [split.caption_spans[i] for i in keep], split.windows,
                      None if split.caption_times is None else [split.caption_times[i] for i in keep])
    if split.num_captions == 0:
        raise AnnotationError(f"the {split.name} split read from {_source(split)} has no (video, caption) pair to "
                              "train on")
    return split
