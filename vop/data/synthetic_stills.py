"""Synthetic image-caption pairs: the synthetic videos with captions that never mention motion.

Stage 1 of the synthetic benchmark pretrains the tiny CLIP on these (one frame per video, so an
"image"), the way CLIP was pretrained on images: it learns shape, colour and background but has
never read a direction word, which stage 2 (the video captions) then has to teach.
"""
from __future__ import annotations

from dataclasses import replace

from vop.data.split import Split
from vop.data.synthetic import load_synthetic

STILL_TEMPLATES = (
    "a {colour} {shape} on a {background} background",
    "a picture of a {shape} in {colour} over {background}",
)


def still_captions(split: Split) -> Split:
    """The same videos, each caption rewritten from the video's attributes without its direction."""
    attributes = split.info["attributes"]
    captions = [STILL_TEMPLATES[i % len(STILL_TEMPLATES)].format(**attributes[video])
                for i, video in enumerate(split.caption_video)]
    return replace(split, captions=captions)


def load_synthetic_stills(**kwargs) -> dict[str, Split]:
    """`load_synthetic(**kwargs)` with motion-free captions; use it with `data.num_frames=1`."""
    return {name: still_captions(split) for name, split in load_synthetic(**kwargs).items()}
