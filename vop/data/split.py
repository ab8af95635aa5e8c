"""The one shape every dataset parser returns: the videos of a split and their captions."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vop.data.windows import Window


@dataclass
class Split:
    """Videos of one split and the captions that describe them.

    `caption_video[i]` is the index into `video_ids` / `video_paths` of caption i, so a video may
    have several captions (MSR-VTT training) or one paragraph (DiDeMo, ActivityNet).

    `caption_spans` (optional): per caption the (start, end) seconds of its video it describes, or None
    for a caption of the whole video (moment ground truth: DiDeMo, synthetic_long).
    `caption_times` (optional): per caption every annotator's (start, end) seconds (DiDeMo's `times`), for
    moment localisation as DiDeMo's authors score it (vop/metrics/moments.py).
    `windows` (optional): per video row the Window (frames, seconds) it stands for, None for the whole
    video: a moment split (vop/retrieval/moments.py) lists each window of a video as its own row.
    """

    name: str
    video_ids: list[str]
    video_paths: list[Path]
    captions: list[str]
    caption_video: list[int]
    info: dict = field(default_factory=dict)
    caption_spans: list[tuple[float, float] | None] | None = None
    windows: list[Window | None] | None = None
    caption_times: list[list[tuple[float, float]] | None] | None = None

    def __post_init__(self) -> None:
        if len(self.video_ids) != len(self.video_paths):
            raise ValueError(f"split {self.name!r}: {len(self.video_ids)} ids but {len(self.video_paths)} paths")
        if len(self.captions) != len(self.caption_video):
            raise ValueError(f"split {self.name!r}: {len(self.captions)} captions but {len(self.caption_video)} links")
        bad = [i for i in self.caption_video if not 0 <= i < len(self.video_ids)]
        if bad:
            raise ValueError(f"split {self.name!r}: caption links out of range, e.g. {bad[:3]}")
        if self.caption_spans is not None and len(self.caption_spans) != len(self.captions):
            raise ValueError(f"split {self.name!r}: {len(self.captions)} captions but {len(self.caption_spans)} spans")
        if self.caption_times is not None and len(self.caption_times) != len(self.captions):
            raise ValueError(f"split {self.name!r}: {len(self.captions)} captions but {len(self.caption_times)} times")
        if self.windows is not None and len(self.windows) != len(self.video_ids):
            raise ValueError(f"split {self.name!r}: {len(self.video_ids)} videos but {len(self.windows)} windows")

    @property
    def num_videos(self) -> int:
        return len(self.video_ids)

    @property
    def num_captions(self) -> int:
        return len(self.captions)

    def subset(self, keep: list[int]) -> "Split":
        """The split restricted to the videos `keep` (indices, in order) and their captions."""
        new_index = {old: new for new, old in enumerate(keep)}
        kept = [i for i, v in enumerate(self.caption_video) if v in new_index]
        return Split(self.name, [self.video_ids[i] for i in keep], [self.video_paths[i] for i in keep],
                     [self.captions[i] for i in kept], [new_index[self.caption_video[i]] for i in kept],
                     dict(self.info), None if self.caption_spans is None else [self.caption_spans[i] for i in kept],
                     None if self.windows is None else [self.windows[i] for i in keep],
                     None if self.caption_times is None else [self.caption_times[i] for i in kept])
