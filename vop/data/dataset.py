"""Video-text datasets over a `Split`: decoded frames as uint8, captions as strings."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vop.data.decode_error import VideoDecodeError
from vop.data.decoders.base import Decoder, read_frames, read_window
from vop.data.deferred import stack_videos
from vop.data.frames import fit_frames, fit_short_side, pad_videos
from vop.data.split import Split
from vop.data.tokenizer import tokenize
from vop.errors import ConfigError


CROPS = {"square": fit_frames, "whole": fit_short_side}


class VideoTextDataset(Dataset):
    """`per="caption"`: one item per (video, caption) pair (training);
    `per="video"`: one item per video (evaluation encodes each video once).

    Item: {"video": uint8 [T, S, S, 3], "text": str, "video_id": str, "index": int, "item": int,
    "skipped": list} where `index` is the video's index in the split and `item` the dataset item.
    Random frame sampling draws from a generator
    seeded by (seed, epoch, item), so it does not depend on worker count or order.

    `skip_bad` (training): a video that fails to decode is replaced by another item drawn from a
    generator seeded by (seed, epoch, item, attempt), and {"path", "reason", "video_id"} goes into
    "skipped" so the main process can count and log it (workers are separate processes).
    Without it (evaluation) the error propagates, naming the video.

    `crop`: `square` ships the centre square [T, S, S, 3]; `whole` (X-Pool's training crop, taken
    from the whole frame) ships the whole frame with its short side S, for `Collate(pad=True)`.
    """

    def __init__(self, split: Split, decoder: Decoder, num_frames: int, sampling: str, frame_size: int,
                 per: str = "caption", seed: int = 0, skip_bad: bool = False, max_attempts: int = 20,
                 crop: str = "square"):
        if per not in ("caption", "video"):
            raise ValueError(f"per={per!r}: expected 'caption' or 'video'")
        if crop not in CROPS:
            raise ConfigError(f"data.train_crop={crop!r}: expected one of {sorted(CROPS)}")
        self.shape_frames = CROPS[crop]
        self.split, self.decoder, self.per = split, decoder, per
        self.num_frames, self.sampling, self.frame_size = num_frames, sampling, frame_size
        self.seed, self.epoch = seed, 0
        self.skip_bad, self.max_attempts = skip_bad, max_attempts

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.split.num_captions if self.per == "caption" else self.split.num_videos

    def video_of(self, item: int) -> int:
        return self.split.caption_video[item] if self.per == "caption" else item

    def __getitem__(self, item: int) -> dict:
        skipped: list[dict] = []
        for attempt in range(self.max_attempts if self.skip_bad else 1):
            try:
                return {**self.load(item), "skipped": skipped}
            except VideoDecodeError as err:
                if not self.skip_bad:
                    raise VideoDecodeError(err.path, f"{err.reason}. scripts/check_videos.py lists every such "
                                           "video; with its manifest, data.allow_missing_test=true excludes "
                                           "them from evaluation") from err
                skipped.append({"path": err.path, "reason": err.reason, "video_id": self.split.video_ids[
                    self.video_of(item)]})
                item = self.redraw(item, attempt)
        raise self.gave_up(skipped)

    def redraw(self, item: int, attempt: int) -> int:
        """The item that replaces `item` after the `attempt`-th (0-based) failure in a row.

        Deterministic: the same draw whatever the worker count or order, and whether the video
        failed in a worker (CPU decoders) or on the GPU (vop/data/bad_videos.py, BadVideoReplacer)."""
        return int(np.random.default_rng([self.seed, self.epoch, item, attempt + 1]).integers(len(self)))

    def gave_up(self, skipped: list[dict]) -> VideoDecodeError:
        return VideoDecodeError(skipped[-1]["path"], (
            f"{self.max_attempts} videos drawn in a row failed to decode, e.g. {skipped[0]['path']} "
            f"({skipped[0]['reason']}); the videos look missing or unreadable: check data.root"))

    def load(self, item: int) -> dict:
        """Item `item` without the skipping policy: a video that fails to decode raises VideoDecodeError."""
        video = self.video_of(item)
        path = self.split.video_paths[video]
        rng = np.random.default_rng([self.seed, self.epoch, item])
        window = self.split.windows[video] if self.split.windows is not None else None
        try:
            if window is None:
                frames = read_frames(self.decoder, path, self.num_frames, self.sampling, rng)  # [T, H, W, 3]
            else:  # a moment: T frames sampled within its window, only those decoded
                frames = read_window(self.decoder, path, window, self.num_frames, self.sampling, rng)
        except VideoDecodeError as err:
            raise VideoDecodeError(path, f"{err.reason} (split {self.split.name!r}, item {item}, "
                                         f"video {self.split.video_ids[video]!r})") from err
        text = self.split.captions[item] if self.per == "caption" else ""
        return {"video": self.shape_frames(frames, self.frame_size), "text": text,
                "video_id": self.split.video_ids[video], "index": video, "item": item}


class Collate:
    """Stacks frames (still uint8: 4x less to pin and copy than float) and tokenises captions."""

    def __init__(self, tokenizer=None, max_text_len: int = 77, pad: bool = False):
        self.tokenizer, self.max_text_len, self.pad = tokenizer, max_text_len, pad

    def __call__(self, items: list[dict]) -> dict:
        videos = [it["video"] for it in items]
        batch = {"video": None if self.pad else stack_videos(videos),  # [B, T, S, S, 3] (or deferred)
                 "index": torch.tensor([it["index"] for it in items]),
                 "item": torch.tensor([it["item"] for it in items]),  # seeds per-item augmentation
                 "video_id": [it["video_id"] for it in items],
                 "skipped": [record for it in items for record in it.get("skipped", ())]}
        if self.tokenizer is not None:
            batch["input_ids"] = tokenize(self.tokenizer, [it["text"] for it in items], self.max_text_len)
        if self.pad:  # whole frames of different sizes: [B, T, H, W, 3] and each one's (h, w)
            batch["video"], sizes = pad_videos(videos)
            batch["frame_hw"] = sizes.tolist()  # a list stays on the host: no device sync to read it
        return batch


def make_loader(dataset: VideoTextDataset, batch_size: int, shuffle: bool, num_workers: int,
                collate: Collate, seed: int, drop_last: bool = False, pin_memory: bool = False,
                sampler: Sampler | None = None) -> DataLoader:
    # Training workers are not persistent: they are forked anew each epoch and so see the
    # dataset's current epoch (set_epoch), which seeds the random frame sampling.
    generator = torch.Generator().manual_seed(seed)
    # With a `sampler` (sharded for DDP), `shuffle` only says whether it reshuffles per epoch.
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=num_workers,
                      collate_fn=collate, drop_last=drop_last, pin_memory=pin_memory, generator=generator,
                      persistent_workers=num_workers > 0 and not shuffle)
