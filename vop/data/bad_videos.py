"""Missing, unreadable and truncated videos: excluded, skipped, counted and logged, never silent.

- Before a run: videos whose file is missing, or that the manifest (scripts/check_videos.py)
  marks as broken, are found at once. Training excludes them; evaluation refuses them, naming
  them, unless `data.allow_missing_test=true`, which excludes them and marks the metrics as not
  comparable to published numbers (the test set is no longer the protocol's).
- During training: a video that fails to decode is skipped by the dataset (another item is
  drawn); the skip travels back in the batch (workers are separate processes), and
  `BadVideoCounter` in the main process logs each bad path once and stops the run when more than
  `data.max_bad_fraction` of the training videos are bad.
- Decoded on the GPU (NVDEC, nvJPEG; in the main process, after collation): `BadVideoReplacer`
  applies the same policy there. A video that fails is replaced by the item the dataset would
  have drawn (`VideoTextDataset.redraw`), with its caption, ids and tokens, and its record goes
  into the batch's "skipped" list, so the same counter counts it the same way.
- Building a gallery (a user's folder, a dataset split): each video is read once, so there is
  nothing to redraw. `ReadableVideos` hands back a video that fails to decode as a record, and
  `drop_unreadable` applies the policy: each one named in a WARNING, left out with its
  captions, counted, and the build stops above a fraction (or at the first one, strict).
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Iterable, Iterator

import torch
from torch.utils.data import Dataset

from vop.data.annotations.common import few
from vop.data.decode_error import VideoDecodeError
from vop.data.manifest import read_manifest
from vop.data.split import Split
from vop.data.video_header import UnreadableHeader, read_video_header
from vop.errors import ConfigError, UserError

log = logging.getLogger(__name__)


class BadVideosError(UserError, RuntimeError):
    """Too many training videos are bad, or test videos are missing and that is not allowed."""


def unusable_videos(split: Split, manifest: dict[str, dict], probe: bool = False) -> dict[int, str]:
    """{video index: reason} for videos whose file is missing or that the manifest marks as broken;
    `probe`: also those the manifest does not list whose header does not open as a video (a cheap
    check, no decoding: a zero-byte, garbage or audio-only file, an mp4 cut before its index)."""
    bad = {}
    for index, path in enumerate(split.video_paths):
        record = manifest.get(str(path))
        if record is not None and record.get("status") != "ok":
            bad[index] = f"{record.get('status')}: {record.get('error')} (manifest)"
        elif not os.path.isfile(path):
            bad[index] = "file not found"
        elif probe and record is None and (problem := header_problem(path)):
            bad[index] = problem
    return bad


def header_problem(path) -> str | None:
    """Why the file at `path` does not open as a video (its container header, no frame decoded); None if it does."""
    try:
        header = read_video_header(path)
    except UnreadableHeader as err:
        return f"it does not open as a video ({err})"
    return header.no_video


def _describe(split: Split, bad: dict[int, str]) -> str:
    return few([f"{split.video_paths[i]} ({reason})" for i, reason in bad.items()], n=3)


def usable_train_split(split: Split, max_bad_fraction: float, manifest_path: str | None) -> tuple[Split, "BadVideoCounter"]:
    """The training split without unusable videos, and the counter that enforces the limit."""
    bad = unusable_videos(split, read_manifest(manifest_path))
    counter = BadVideoCounter(split.num_videos, max_bad_fraction, split.name)
    if not bad:
        return split, counter
    log.warning("%s: excluding %d of %d videos that are missing or broken: %s", split.name, len(bad),
                split.num_videos, _describe(split, bad))
    counter.add({str(split.video_paths[i]): reason for i, reason in bad.items()})
    return split.subset([i for i in range(split.num_videos) if i not in bad]), counter


def usable_test_split(split: Split, allow_missing: bool, manifest_path: str | None) -> tuple[Split, dict]:
    """The test split, and the report for metrics.json: excluded videos and whether comparable. Every
    test video's header is opened first (the manifest's verdict where it has one), so a broken one
    stops a run before it trains, not in its first evaluation."""
    bad = unusable_videos(split, read_manifest(manifest_path), probe=True)
    report = {f"{split.name}/excluded_videos": len(bad), "comparable": not bad}
    if not bad:
        return split, report
    if not allow_missing:
        raise BadVideosError(
            f"{len(bad)} of {split.num_videos} {split.name} videos are missing or broken: {_describe(split, bad)}. "
            "Published numbers use every test video: restore them (docs/datasets.md, 'Bad videos'), or pass "
            "data.allow_missing_test=true to exclude them (metrics are then marked comparable=false).")
    log.warning("%s: EXCLUDING %d of %d videos (data.allow_missing_test=true): %s; the metrics are NOT "
                "comparable to published numbers", split.name, len(bad), split.num_videos, _describe(split, bad))
    keep = [i for i in range(split.num_videos) if i not in bad]
    if not keep:
        raise BadVideosError(f"every {split.name} video is missing or broken, e.g. {_describe(split, bad)}")
    return split.subset(keep), report


class BadVideoCounter:
    """Counts distinct bad training videos in the main process and enforces `max_bad_fraction`."""

    def __init__(self, num_videos: int, max_bad_fraction: float, split_name: str = "train") -> None:
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ConfigError(f"data.max_bad_fraction must lie in [0, 1], got {max_bad_fraction}")
        self.num_videos, self.max_bad_fraction, self.split_name = num_videos, max_bad_fraction, split_name
        self.bad: dict[str, str] = {}  # path -> reason
        self.skips = 0  # draws replaced, a video counted each time it was drawn

    def update(self, records: list[dict]) -> None:
        """Records from a batch's "skipped" list: {"path", "reason", "video_id"}."""
        self.skips += len(records)
        new = {r["path"]: r["reason"] for r in records if r["path"] not in self.bad}
        for path, reason in new.items():
            log.warning("skipped bad training video %s: %s", path, reason)
        self.add(new)

    def add(self, bad: dict[str, str]) -> None:
        self.bad.update(bad)
        if len(self.bad) > self.max_bad_fraction * self.num_videos:
            raise BadVideosError(
                f"{len(self.bad)} of {self.num_videos} {self.split_name} videos "
                f"({100 * len(self.bad) / self.num_videos:.2f}%) are missing or unreadable, more than "
                f"data.max_bad_fraction={self.max_bad_fraction}: {few(list(self.bad), n=3)}. Check data.root and the "
                "videos (scripts/check_videos.py lists every bad one), or raise data.max_bad_fraction.")

    def report(self) -> dict:
        return {f"{self.split_name}/bad_videos": len(self.bad), f"{self.split_name}/skipped_draws": self.skips}


class BadVideoReplacer:
    """Replaces, inside a collated batch, a video that failed to decode on the device (see module docstring)."""

    def __init__(self, dataset, collate: Callable[[list[dict]], dict]):
        self.dataset, self.collate = dataset, collate  # a VideoTextDataset with skip_bad=True

    @classmethod
    def for_loader(cls, loader) -> "BadVideoReplacer | None":
        """The replacer for a DataLoader whose dataset skips bad videos (training); None otherwise."""
        dataset = getattr(loader, "dataset", None)
        dataset = getattr(dataset, "dataset", dataset)  # through vop.data.in_flight.InFlight
        if not getattr(dataset, "skip_bad", False):
            return None
        return cls(dataset, loader.collate_fn)

    def replace(self, batch: dict, position: int, error: VideoDecodeError, device: torch.device) -> torch.Tensor:
        """Draw replacements for `batch`'s item at `position` until one decodes; update `batch` in place
        (ids, caption tokens, "skipped") and return its frames uint8 [T, S, S, 3] on `device`."""
        item, video_id, mine = int(batch["item"][position]), batch["video_id"][position], []
        for attempt in range(self.dataset.max_attempts):
            mine.append({"path": error.path, "reason": error.reason, "video_id": video_id})
            batch["skipped"].append(mine[-1])
            item = self.dataset.redraw(item, attempt)
            one = self.collate([self.dataset[item]])  # a worker's skips for this draw land in one["skipped"]
            frames = one["video"]
            video = frames.decode_videos(device)[0] if hasattr(frames, "decode_videos") else frames[0].to(device)
            if not isinstance(video, VideoDecodeError):
                self._splice(batch, position, one)
                return video
            error, video_id = video, one["video_id"][0]
        raise self.dataset.gave_up(mine)

    @staticmethod
    def _splice(batch: dict, position: int, one: dict) -> None:
        for key, value in one.items():
            if key == "skipped":
                batch[key].extend(value)
            elif key != "video":
                batch[key][position] = value[0]  # a tensor row or a list entry


class ReadableVideos(Dataset):
    """A per-video VideoTextDataset whose videos that fail to decode come back as records:
    {"unreadable": {"path", "reason", "video_id"}, "index": video}. `CollateReadable` then
    batches the readable ones and lists the others under "unreadable"."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int) -> dict:
        try:
            return self.dataset.load(item)
        except VideoDecodeError as err:
            video = self.dataset.video_of(item)
            return {"unreadable": {"path": err.path, "reason": err.reason,
                                   "video_id": self.dataset.split.video_ids[video]}, "index": video}


class CollateReadable:
    """Collates the readable items of a `ReadableVideos` batch; "unreadable": {video index: record}."""

    def __init__(self, collate: Callable[[list[dict]], dict]) -> None:
        self.collate = collate

    def __call__(self, items: list[dict]) -> dict:
        readable = [it for it in items if "unreadable" not in it]
        batch = self.collate(readable) if readable else {"index": torch.zeros(0, dtype=torch.long)}
        batch["unreadable"] = {it["index"]: it["unreadable"] for it in items if "unreadable" in it}
        return batch


def every_video_readable(batches: Iterable[dict], split: Split) -> Iterator[dict]:
    """The batches of a `ReadableVideos` loader over `split`, refusing one with an unreadable video:
    an evaluation ranks every video of its split, so it cannot go on without one (and a DataLoader
    worker's own exception would reach the user as a worker traceback)."""
    for batch in batches:
        if batch["unreadable"]:
            raise UnreadableEvaluationVideo(split.name, [(r["path"], r["reason"]) for r in batch["unreadable"].values()])
        yield batch


class UnreadableEvaluationVideo(BadVideosError):
    """A video of an evaluated split failed to decode (in a data worker, or on the device)."""

    def __init__(self, split_name: str, failures: list[tuple[str, str]]):
        named = "; ".join(f"{path!r}: {reason}" for path, reason in failures[:3])
        super().__init__(
            f"a {split_name} video cannot be decoded: {named}. An evaluation ranks every video of its split: "
            "replace or remove the file (scripts/check_videos.py lists every such video; with its manifest, "
            "data.allow_missing_test=true leaves them out of evaluation, saying how many)")


def check_unreadable(split: Split, unreadable: dict[int, str], max_bad_fraction: float, strict: bool,
                     what: str) -> None:
    """BadVideosError when `strict` and a video of `split` is unreadable ({video index: reason}), or when
    more than `max_bad_fraction` of its videos are; `what` says what is being built."""
    if not unreadable or not (strict or len(unreadable) > max_bad_fraction * split.num_videos):
        return
    listed = _describe(split, unreadable)
    if strict:
        raise BadVideosError(f"{what}: {len(unreadable)} of {split.num_videos} videos cannot be read: {listed} "
                             "(strict=true stops at any; strict=false skips and counts them)")
    raise BadVideosError(
        f"{what}: {len(unreadable)} of {split.num_videos} videos ({100 * len(unreadable) / split.num_videos:.1f}%) "
        f"cannot be read, more than max_bad_fraction={max_bad_fraction}: {listed}. Check the videos "
        "(scripts/check_videos.py lists every bad one), or raise max_bad_fraction.")


def drop_unreadable(split: Split, unreadable: dict[int, str], max_bad_fraction: float, strict: bool,
                    what: str) -> Split:
    """`split` without the videos `unreadable` ({video index: reason}) and their captions, each named in
    a WARNING; BadVideosError where `check_unreadable` says the policy is broken."""
    check_unreadable(split, unreadable, max_bad_fraction, strict, what)
    if not unreadable:
        return split
    for index, reason in sorted(unreadable.items()):
        log.warning("%s: skipped unreadable video %s: %s", what, split.video_paths[index], reason)
    kept = split.subset([i for i in range(split.num_videos) if i not in unreadable])
    log.warning("%s: skipped %d of %d videos that cannot be read, and their %d captions", what, len(unreadable),
                split.num_videos, split.num_captions - kept.num_captions)
    return kept
