"""Moment galleries: each window of a long video is a gallery row, and a text query returns moments.

`moment_split` turns a split of whole videos into one of windows (vop/data/windows.py): every
window of a video becomes a row (its id and file repeated, its frames and seconds in
`Split.windows`); captions link to the row that overlaps their ground-truth span most (or the
video's first row). `rank_moments` orders a query's rows by score and keeps a row only when no
better row of the same video overlaps it by `nms_iou` or more (temporal non-maximum suppression)
and its video has fewer than `per_video` rows kept already.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import torch

from vop.data.bad_videos import drop_unreadable
from vop.data.decode_error import VideoDecodeError
from vop.data.decoders.base import Decoder
from vop.data.shots import shot_frames
from vop.data.split import Split
from vop.data.video_header import UnreadableHeader
from vop.data.video_timing import frame_rate
from vop.data.windows import Window, didemo_windows, plan_windows, shot_windows
from vop.errors import InputError
from vop.metrics.moments import temporal_iou

log = logging.getLogger(__name__)


def check_moment_options(window: float | None, stride: float | None) -> None:
    """moments.window and moments.stride: both > 0 seconds, or window null (whole videos)."""
    if window is None:
        if stride is not None:
            raise InputError(f"moments.stride={stride} needs moments.window=<seconds> (a whole-video gallery has none)")
        return
    for key, value in (("window", window), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InputError(f"moments.{key}={value!r}: give a number of seconds > 0, e.g. moments.window=4 "
                             "moments.stride=2 (moments.window=null: whole videos)")


def video_windows(decoder: Decoder, path, window: float | None, stride: float | None, shots: float | None = None,
                  didemo: bool = False) -> list[Window]:
    """The windows of the video at `path` (`shots`: a PySceneDetect threshold, the shots, each cut into windows
    where longer than `window`); VideoDecodeError naming it when its frame count or frame rate cannot be read."""
    try:
        if didemo:  # DiDeMo's 21 candidates: spans of whole 5-second segments
            return didemo_windows(decoder.num_frames(path), frame_rate(path))
        if shots is not None:
            return shot_windows(shot_frames(path, shots), decoder.num_frames(path), frame_rate(path), window, stride)
        return plan_windows(decoder.num_frames(path), frame_rate(path), window, stride)
    except (VideoDecodeError, UnreadableHeader, ValueError, OSError) as err:
        raise VideoDecodeError(path, f"its length or frame rate cannot be read ({getattr(err, 'reason', err)})") \
            from None


def moment_split(split: Split, decoder: Decoder, window: float | None, stride: float | None,
                 shots: float | None = None, didemo: bool = False, max_bad_fraction: float = 0.1,
                 strict: bool = False, what: str = "moments") -> Split:
    """`split` with one row per window (or shot: `shots`, a PySceneDetect threshold; or DiDeMo's candidate
    moment: `didemo`) of each video (module docstring). A video whose windows cannot be planned is left out
    with its captions, named and counted, under the build's bad-video policy over *videos* (not windows:
    vop/data/bad_videos.py drop_unreadable)."""
    plans, unreadable = {}, {}
    for v, path in enumerate(split.video_paths):
        try:
            plans[v] = video_windows(decoder, path, window, stride, shots, didemo)
        except VideoDecodeError as err:
            unreadable[v] = err.reason
    split = drop_unreadable(split, unreadable, max_bad_fraction, strict, what)
    ids, paths, windows, first_row = [], [], [], []
    for vid, path, planned in zip(split.video_ids, split.video_paths, [plans[v] for v in sorted(plans)]):
        first_row.append(len(ids))
        for w in planned:
            ids.append(vid)
            paths.append(path)
            windows.append(w)
    rows_of = [range(first_row[v], (first_row + [len(ids)])[v + 1]) for v in range(split.num_videos)]
    links = []
    for c, video in enumerate(split.caption_video):
        rows = rows_of[video]
        span = split.caption_spans[c] if split.caption_spans is not None else None
        if span is None:
            links.append(rows[0])
            continue
        spans = torch.tensor([[windows[r].start, windows[r].end] for r in rows])  # [n, 2]
        links.append(rows[int(temporal_iou(spans, torch.tensor(span, dtype=spans.dtype)).argmax())])
    kind = {"split": "shots", "shot_threshold": shots} if shots is not None else {"split": "didemo"} if didemo else {}
    info = {**split.info, "moments": {"window": window, "stride": stride, **kind}}
    return replace(split, video_ids=ids, video_paths=paths, caption_video=links, info=info, windows=windows)


def rank_moments(scores: torch.Tensor, rows: torch.Tensor, video: torch.Tensor, spans: torch.Tensor, k: int,
                 nms_iou: float, per_video: int) -> list[int]:
    """At most `k` of the candidate `rows` [n] (scores [n], best first), after temporal NMS within each
    video and at most `per_video` per video; `video` [N] names each gallery row's video, spans [N, 2]."""
    order = scores.argsort(descending=True, stable=True)
    kept: list[int] = []
    kept_of: dict[int, list[int]] = {}
    for row in rows[order].tolist():
        mine = kept_of.setdefault(int(video[row]), [])
        if len(mine) >= per_video:
            continue
        if mine and float(temporal_iou(spans[mine], spans[row]).max()) >= nms_iou:
            continue
        mine.append(row)
        kept.append(row)
        if len(kept) == k:
            break
    return kept


def video_numbers(video_ids: list[str], video_paths: list[str]) -> torch.Tensor:
    """[N] one number per distinct (id, file) of the gallery's rows: which rows are one video."""
    numbers: dict[tuple[str, str], int] = {}
    return torch.tensor([numbers.setdefault(key, len(numbers)) for key in zip(video_ids, video_paths)],
                        dtype=torch.long)


def check_nms(nms_iou: float, per_video: int) -> None:
    if isinstance(nms_iou, bool) or not isinstance(nms_iou, (int, float)) or not 0 < nms_iou <= 1:
        raise InputError(f"moments.nms_iou={nms_iou!r}: give a temporal IoU in (0, 1], e.g. 0.5 (a moment is dropped "
                         "when a better one of its video overlaps it this much)")
    if isinstance(per_video, bool) or not isinstance(per_video, int) or per_video < 1:
        raise InputError(f"moments.per_video={per_video!r}: give a whole number >= 1 (moments per video)")


TRUTH_IOU = 0.5  # a moment is a caption's ground truth when it overlaps the caption's span this much


def caption_truth(gallery, caption: int) -> set[int]:
    """The rows of `gallery` that caption `caption` describes: its video (none for a caption of no video); in a
    moment gallery the moments of its video overlapping its ground-truth span by TRUTH_IOU or more (every
    moment of the video without a span)."""
    owner = gallery.caption_video[caption]
    if owner < 0:
        return set()
    if gallery.spans is None:
        return {owner}
    rows = gallery.video_rows[(gallery.video_ids[owner], gallery.video_paths[owner])]
    span = gallery.caption_spans[caption] if gallery.caption_spans is not None else None
    if span is None:
        return set(rows)
    overlap = temporal_iou(gallery.spans[rows].double(), torch.tensor(span, dtype=torch.float64))
    return {r for r, o in zip(rows, overlap.tolist()) if o >= TRUTH_IOU}


def moment_captions(gallery) -> dict[int, str]:
    """Row -> the caption shown with it: of the captions of its video, the one whose span overlaps the row
    most (the video's first caption where no caption has a span)."""
    by_video: dict[tuple[str, str], list[int]] = {}
    for c, owner in enumerate(gallery.caption_video):
        if owner >= 0:
            by_video.setdefault((gallery.video_ids[owner], gallery.video_paths[owner]), []).append(c)
    spans = gallery.caption_spans or [None] * len(gallery.captions)
    shown = {}
    for key, rows in gallery.video_rows.items():
        captions = by_video.get(key)
        if not captions:
            continue
        timed = [c for c in captions if spans[c] is not None]
        if not timed:
            shown.update({r: gallery.captions[captions[0]] for r in rows})
            continue
        overlap = temporal_iou(gallery.spans[rows].double()[:, None], torch.tensor([spans[c] for c in timed],
                                                                                  dtype=torch.float64)[None])  # [r, c]
        shown.update({r: gallery.captions[timed[best]] for r, best in zip(rows, overlap.argmax(1).tolist())})
    return shown
