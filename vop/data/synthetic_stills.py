"""Synthetic image-caption pairs: the synthetic videos with captions that never mention motion.

Stage 1 of the synthetic benchmark pretrains the tiny CLIP on these (one frame per video, so an
"image"), the way CLIP was pretrained on images: it learns shape, colour and background but has
never read a direction word, which stage 2 (the video captions) then has to teach.

With `positions=True` each caption also says where the shape is in the video's middle frame
("at the top left", "in the centre"), the frame that uniform sampling of one frame shows (use
`data.train_sampling=uniform`). Pretraining that only names shape, colour and background teaches
the model to ignore where the shape is, and a video model that cannot see where the shape is in
each frame cannot see which way it moves, however it orders the frames. On the `twins` split with
2-frame videos (`frames=2`: the one uniformly sampled frame is the last) a pair shows the same
shape at its start and at its end position, so with `data.shuffle_group=2` every batch asks the
model to tell two places apart.
"""
from __future__ import annotations

from dataclasses import replace

from vop.data.split import Split
from vop.data.synthetic import DIRECTIONS, TWIN_SPLITS, VideoSpec, load_synthetic, split_plan, twin_plan

STILL_TEMPLATES = (
    "a {colour} {shape} on a {background} background",
    "a picture of a {shape} in {colour} over {background}",
)


def where(spec: VideoSpec, frame: int, width: int, height: int) -> str:
    """The shape's place in `frame` by thirds of the picture: 'at the top left', 'on the right', 'in the centre'."""
    dx, dy = DIRECTIONS[spec.direction]
    x, y = spec.start[0] + dx * spec.step * frame, spec.start[1] + dy * spec.step * frame
    column = ("left", "centre", "right")[min(int(3 * x / width), 2)]
    row = ("top", "middle", "bottom")[min(int(3 * y / height), 2)]
    if (row, column) == ("middle", "centre"):
        return "in the centre"
    if row == "middle":
        return f"on the {column}"
    return f"at the {row}" if column == "centre" else f"at the {row} {column}"


def still_captions(split: Split, positions: bool = False) -> Split:
    """The same videos, each caption rewritten from the video's attributes without its direction."""
    attributes = split.info["attributes"]
    captions = [STILL_TEMPLATES[i % len(STILL_TEMPLATES)].format(**attributes[video])
                for i, video in enumerate(split.caption_video)]
    if positions:  # the specs are redrawn from the split's parameters (the same seeded RNG, no rendering)
        p = split.info["params"]
        size = (p["seed"], p["frames"], p["width"], p["height"])
        plan = (twin_plan(split.name, p[f"num_{split.name}"], *size) if split.name in TWIN_SPLITS
                else split_plan(p["num_train"], p["num_test"], *size)[split.name])
        specs = [spec for spec, _ in plan]
        middle = p["frames"] // 2  # uniform sampling of one frame: floor(0.5 * frames)
        captions = [f"{c}, {where(specs[v], middle, p['width'], p['height'])}"
                    for c, v in zip(captions, split.caption_video)]
    return replace(split, captions=captions)


def load_synthetic_stills(positions: bool = False, **kwargs) -> dict[str, Split]:
    """`load_synthetic(**kwargs)` with motion-free captions; use it with `data.num_frames=1`."""
    return {name: still_captions(split, positions) for name, split in load_synthetic(**kwargs).items()}
