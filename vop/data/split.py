"""The one shape every dataset parser returns: the videos of a split and their captions."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Split:
    """Videos of one split and the captions that describe them.

    `caption_video[i]` is the index into `video_ids` / `video_paths` of caption i, so a video may
    have several captions (MSR-VTT training) or one paragraph (DiDeMo, ActivityNet).
    """

    name: str
    video_ids: list[str]
    video_paths: list[Path]
    captions: list[str]
    caption_video: list[int]
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.video_ids) != len(self.video_paths):
            raise ValueError(f"split {self.name!r}: {len(self.video_ids)} ids but {len(self.video_paths)} paths")
        if len(self.captions) != len(self.caption_video):
            raise ValueError(f"split {self.name!r}: {len(self.captions)} captions but {len(self.caption_video)} links")
        bad = [i for i in self.caption_video if not 0 <= i < len(self.video_ids)]
        if bad:
            raise ValueError(f"split {self.name!r}: caption links out of range, e.g. {bad[:3]}")

    @property
    def num_videos(self) -> int:
        return len(self.video_ids)

    @property
    def num_captions(self) -> int:
        return len(self.captions)

    def subset(self, keep: list[int]) -> "Split":
        """The split restricted to the videos `keep` (indices, in order) and their captions."""
        new_index = {old: new for new, old in enumerate(keep)}
        pairs = [(c, new_index[v]) for c, v in zip(self.captions, self.caption_video) if v in new_index]
        return Split(self.name, [self.video_ids[i] for i in keep], [self.video_paths[i] for i in keep],
                     [c for c, _ in pairs], [v for _, v in pairs], dict(self.info))
