"""Reading the synthetic videos back from their pixels alone: what a viewer would say they show."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vop.data.decoders.decord import DecordDecoder
from vop.data.synthetic import BACKGROUNDS, COLOURS


def decode_all(path: Path) -> np.ndarray:
    decoder = DecordDecoder()
    return decoder.decode(path, np.arange(decoder.num_frames(path))).numpy()  # [T, H, W, 3]


def nearest(rgb: np.ndarray, palette: dict) -> str:
    return min(palette, key=lambda name: np.abs(np.asarray(palette[name]) - rgb).sum())


def shape_from_mask(mask: np.ndarray) -> str:
    """Name the shape in a boolean [H, W] mask from a few probes of its bounding box."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(float)
    h, w = box.shape

    def probe(fy: float, fx: float) -> float:  # fill of a 3x3 patch at a relative position
        y, x = round(fy * (h - 1)), round(fx * (w - 1))
        return box[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].mean()

    if box[: h // 2].sum() < 0.6 * box[-(h // 2) :].sum():
        return "triangle"  # apex up: far less ink in the top half
    if np.mean([probe(a, b) for a in (0.1, 0.9) for b in (0.1, 0.9)]) > 0.8:
        return "square"  # filled near the box corners
    if np.mean([probe(a, b) for a in (0.2, 0.8) for b in (0.2, 0.8)]) > 0.8:
        return "circle"  # filled on the diagonals, empty in the corners
    return "cross"


def read_pixels(video: np.ndarray) -> dict[str, str]:
    """What a viewer would say about the video, from pixels only."""
    v = video.astype(np.int32)  # [T, H, W, 3]
    border = np.concatenate([e.reshape(-1, 3) for e in (v[:, 0], v[:, -1], v[:, :, 0], v[:, :, -1])])
    background = np.median(border, axis=0)
    mask = np.abs(v - background).sum(-1) > 60  # [T, H, W] shape pixels
    ys, xs = np.mgrid[0 : v.shape[1], 0 : v.shape[2]]
    centroids = np.array([[xs[m].mean(), ys[m].mean()] for m in mask])  # [T, 2] (x, y)
    dx, dy = centroids[-1] - centroids[0]
    if abs(dx) > abs(dy):
        direction = "right" if dx > 0 else "left"
    else:
        direction = "down" if dy > 0 else "up"  # image y grows downwards
    return {
        "colour": nearest(np.median(v[mask], axis=0), COLOURS),
        "background": nearest(background, BACKGROUNDS),
        "shape": shape_from_mask(mask[len(mask) // 2]),
        "direction": direction,
    }
