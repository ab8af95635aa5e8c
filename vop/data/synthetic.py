"""A procedural video-text dataset, written once as real H.264 mp4 files.

Each video shows one coloured shape moving in one direction over a plain background; its captions
name the colour, the shape, the direction and the background. Retrieval on it is learnable in
minutes on a CPU, and because the videos are real mp4 files the whole decode path
(decoder -> sampling -> collate -> GPU transforms) runs exactly as on MSR-VTT.

With `num_probe > 0` a third split, `probe`, holds the direction probe (synthetic benchmark):
`num_probe` pairs of videos that differ only in time. A pair shows the same shape, colour,
background, size and path; the second video is the first one's frames in reverse order, so it
moves the opposite way, and the pair's captions use the same template and differ only in the
direction. A model that cannot tell frame order apart cannot rank a caption's video above its twin.
`num_twins > 0` adds a training split of such pairs, `twins` (other videos, its own RNG stream):
with `data.shuffle_group=2` every training batch holds each video's time-reversed twin as a
negative, so telling the direction apart pays off in the loss.

Layout under `root/<key>/` (key encodes every argument and the generator version):
    train/<video_id>.mp4, test/<video_id>.mp4, [probe/, twins/,] captions.json
The folder is built under a temporary name and renamed when complete, so an interrupted run is
redone from scratch and a complete one is reused.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np

from vop.data.split import Split

log = logging.getLogger(__name__)

# Bump when the pictures or captions change, so old folders are not silently reused.
GENERATOR_VERSION = 1

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {  # RGB, far apart so they survive yuv420p chroma subsampling and stay nameable
    "red": (220, 30, 30),
    "green": (40, 170, 40),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "orange": (250, 140, 20),
    "purple": (140, 50, 190),
    "pink": (250, 130, 200),
    "cyan": (40, 210, 220),
}
BACKGROUNDS = {  # disjoint from COLOURS so a shape is never invisible on its background
    "black": (15, 15, 15),
    "white": (240, 240, 240),
    "gray": (128, 128, 128),
    "brown": (110, 70, 35),
    "navy": (20, 30, 90),
}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # (dx, dy), y down
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
# Every phrase contains the bare direction word, so "left" etc. can be found in any caption.
DIRECTION_PHRASES = {"left": "to the left", "right": "to the right", "up": "upwards", "down": "downwards"}
TEMPLATES = (
    "a {colour} {shape} moves {direction} on a {background} background",
    "on a {background} background, a {colour} {shape} is moving {phrase}",
    "a {shape} in {colour} travels {phrase} across a {background} screen",
    "{background} background with a {colour} {shape} sliding {phrase}",
)


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to draw one video; drawn up front so rendering order cannot matter."""

    video_id: str
    shape: str
    colour: str
    background: str
    direction: str
    radius: float  # pixels
    start: tuple[float, float]  # (x, y) centre at frame 0, pixels
    step: float  # pixels per frame along the direction

    @property
    def attributes(self) -> dict[str, str]:
        return {"shape": self.shape, "colour": self.colour, "background": self.background, "direction": self.direction}


def caption(spec: VideoSpec, template: int) -> str:
    """Caption `spec` with TEMPLATES[template]."""
    return TEMPLATES[template].format(phrase=DIRECTION_PHRASES[spec.direction], **spec.attributes)


def attribute_combinations(count: int, rng: np.random.Generator) -> list[tuple[str, str, str, str]]:
    """`count` (shape, colour, background, direction) tuples; the first 640 are all distinct.

    Distinct test videos keep retrieval unambiguous (no two test captions say the same thing),
    and cycling through shuffled full passes keeps the training attributes balanced.
    """
    combos = list(itertools.product(SHAPES, COLOURS, BACKGROUNDS, DIRECTIONS))
    passes = -(-count // len(combos))
    order = np.concatenate([rng.permutation(len(combos)) for _ in range(passes)])[:count]
    return [combos[i] for i in order]


def random_spec(video_id: str, combo: tuple[str, str, str, str], frames: int, width: int, height: int,
                rng: np.random.Generator) -> VideoSpec:
    """The video of `combo` (shape, colour, background, direction) with size, start and speed drawn
    from `rng` so that the shape stays fully inside the frame throughout."""
    shape, colour, background, direction = combo
    dx, dy = DIRECTIONS[direction]
    radius = min(width, height) * rng.uniform(0.11, 0.17)
    along, across = (width, height) if dx else (height, width)
    travel = rng.uniform(0.45, 0.7) * (along - 2 * radius)
    start_along = rng.uniform(radius, along - radius - travel)
    if dx + dy < 0:  # moving towards 0: start at the far end instead
        start_along = along - start_along
    start_across = rng.uniform(radius, across - radius)
    start = (start_along, start_across) if dx else (start_across, start_along)
    return VideoSpec(video_id, shape, colour, background, direction, radius, start, travel / (frames - 1))


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of `shape` of size ~r given pixel offsets from its centre (dx, dy: [H, W])."""
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)  # 0.85: area close to the circle's
    if shape == "triangle":  # apex up at -r, base at +0.8r with half-width r
        return (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= (dy + r) / 1.8)
    if shape == "cross":
        bar = r / 3
        return ((np.abs(dx) <= r) & (np.abs(dy) <= bar)) | ((np.abs(dx) <= bar) & (np.abs(dy) <= r))
    raise ValueError(f"synthetic: unknown shape {shape!r}; allowed: {', '.join(SHAPES)}")


def render(spec: VideoSpec, frames: int, width: int, height: int) -> np.ndarray:
    """Draw the video -> uint8 [frames, height, width, 3]."""
    background = np.empty((height, width, 3), dtype=np.uint8)
    background[:] = BACKGROUNDS[spec.background]
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    video[:] = background  # broadcasting whole frames is ~20x faster than broadcasting an RGB triple
    dx, dy = DIRECTIONS[spec.direction]
    r = spec.radius
    for t in range(frames):
        cx = spec.start[0] + dx * spec.step * t
        cy = spec.start[1] + dy * spec.step * t
        # Only the shape's bounding box can change, so draw there (3x faster than the full frame).
        x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, width)
        y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, height)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5  # pixel centres, [h, w] each
        box = video[t, y0:y1, x0:x1]  # view: writes go into the frame
        box[_shape_mask(spec.shape, xs - cx, ys - cy, r)] = COLOURS[spec.colour]
    return video


def write_mp4(path: Path, video: np.ndarray, fps: int) -> None:
    """Encode uint8 [T, H, W, 3] RGB as H.264 yuv420p (the format of typical web video)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        # crf 18 keeps flat colours within a few grey levels; one thread because clips are tiny
        # and spawning x264's thread pool per clip costs more than it saves.
        stream.options = {"crf": "18", "preset": "veryfast"}
        stream.codec_context.thread_count = 1
        for image in video:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())  # flush delayed frames


def _check_args(num_train: int, num_test: int, frames: int, width: int, height: int, fps: int) -> None:
    if num_train < 1 or num_test < 1:
        raise ValueError(f"load_synthetic: num_train and num_test must be >= 1, got {num_train}, {num_test}")
    if frames < 2:
        raise ValueError(f"load_synthetic: frames must be >= 2 so that the shape can move, got {frames}")
    if width % 2 or height % 2 or min(width, height) < 32:
        raise ValueError(f"load_synthetic: width and height must be even (yuv420p) and >= 32, got {width}x{height}")
    if fps < 1:
        raise ValueError(f"load_synthetic: fps must be >= 1, got {fps}")


def split_plan(num_train: int, num_test: int, seed: int, frames: int, width: int, height: int
               ) -> dict[str, list[tuple[VideoSpec, list[str]]]]:
    """Specs and captions of both splits, from one seeded RNG (same arguments, same dataset)."""
    rng = np.random.default_rng(seed)
    plan: dict[str, list[tuple[VideoSpec, list[str]]]] = {}
    for name, count, captions_per_video in (("train", num_train, 2), ("test", num_test, 1)):
        videos = []
        for i, combo in enumerate(attribute_combinations(count, rng)):
            spec = random_spec(f"{name}{i:04d}", combo, frames, width, height, rng)
            templates = rng.choice(len(TEMPLATES), size=captions_per_video, replace=False)
            videos.append((spec, [caption(spec, int(k)) for k in templates]))
        plan[name] = videos
    return plan


def twin(spec: VideoSpec, video_id: str, frames: int) -> VideoSpec:
    """The same shape on the same path played backwards: starts where `spec` ends, moves the other way."""
    dx, dy = DIRECTIONS[spec.direction]
    travel = spec.step * (frames - 1)
    end = (spec.start[0] + dx * travel, spec.start[1] + dy * travel)
    return replace(spec, video_id=video_id, direction=OPPOSITE[spec.direction], start=end)


TWIN_SPLITS = {"probe": 1, "twins": 2}  # split -> its RNG stream (train and test use stream 0)


def twin_plan(name: str, num_pairs: int, seed: int, frames: int, width: int, height: int
              ) -> list[tuple[VideoSpec, list[str]]]:
    """`num_pairs` (video, twin) pairs, adjacent: videos 2i and 2i+1 are each other's twin.

    Its own RNG stream, so asking for it leaves the other splits unchanged; the first 320 pairs
    have distinct (shape, colour, background, axis)."""
    rng = np.random.default_rng([seed, TWIN_SPLITS[name]])
    combos = list(itertools.product(SHAPES, COLOURS, BACKGROUNDS, ("right", "down")))
    order = np.concatenate([rng.permutation(len(combos)) for _ in range(-(-num_pairs // len(combos)))])
    videos = []
    for i, k in enumerate(order[:num_pairs]):
        shape, colour, background, direction = combos[k]
        direction = direction if rng.random() < 0.5 else OPPOSITE[direction]  # which twin comes first
        spec = random_spec(f"{name}{2 * i:04d}", (shape, colour, background, direction), frames, width, height, rng)
        template = int(rng.integers(len(TEMPLATES)))  # one template per pair: captions differ in direction only
        for member in (spec, twin(spec, f"{name}{2 * i + 1:04d}", frames)):
            videos.append((member, [caption(member, template)]))
    return videos


def _generate(folder: Path, plan: dict[str, list[tuple[VideoSpec, list[str]]]], params: dict) -> None:
    """Render and encode every video into `folder`, writing captions.json last."""
    index: dict = {"params": params}
    for name, videos in plan.items():
        # Sequential on purpose: ~12 ms per clip, and a thread pool gained only ~7% (the GIL is
        # held for most of PyAV's encode call) while a process pool would fork a parent that may
        # already hold CUDA or DataLoader state.
        (folder / name).mkdir(parents=True)
        for spec, _ in videos:
            video = render(spec, params["frames"], params["width"], params["height"])  # [T, H, W, 3]
            write_mp4(folder / name / f"{spec.video_id}.mp4", video, params["fps"])
        index[name] = [{"video_id": s.video_id, "captions": c, "attributes": s.attributes} for s, c in videos]
    for name in TWIN_SPLITS:
        for i, entry in enumerate(index.get(name, [])):
            entry["twin"] = i ^ 1  # pairs are adjacent: 0<->1, 2<->3, ...
    (folder / "captions.json").write_text(json.dumps(index, indent=1))


def temp_name(key: str) -> str:
    # Host and pid: several DDP ranks (possibly on several nodes sharing a file system) may
    # generate at once; each writes its own copy and the first rename wins.
    return f".{key}.tmp-{socket.gethostname()}-{os.getpid()}"


def remove_stale_temps(root: Path, key: str) -> None:
    """Delete this host's temp folders of `key` whose process died mid-generation."""
    prefix = f".{key}.tmp-{socket.gethostname()}-"
    for temp in root.glob(f"{prefix}*"):
        pid = temp.name[len(prefix):]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0 only checks that the process exists
        except ProcessLookupError:
            shutil.rmtree(temp, ignore_errors=True)
        except (PermissionError, OverflowError):
            pass  # alive under another user, or not a pid we wrote: leave it alone


def _splits(folder: Path) -> dict[str, Split]:
    index = json.loads((folder / "captions.json").read_text())
    splits = {}
    for name in ("train", "test", *TWIN_SPLITS):
        if name not in index:
            continue  # no probe / twins unless asked for
        videos = index[name]
        captions = [c for v in videos for c in v["captions"]]
        links = [i for i, v in enumerate(videos) for _ in v["captions"]]
        splits[name] = Split(
            name=name,
            video_ids=[v["video_id"] for v in videos],
            video_paths=[folder / name / f"{v['video_id']}.mp4" for v in videos],
            captions=captions,
            caption_video=links,
            info={"dataset": "synthetic", "root": str(folder), "params": index["params"],
                  "attributes": [v["attributes"] for v in videos],
                  **({"twin": [v["twin"] for v in videos]} if name in TWIN_SPLITS else {})},
        )
    return splits


def load_synthetic(
    root: str | Path,
    num_train: int = 600,
    num_test: int = 100,
    seed: int = 0,
    frames: int = 24,
    width: int = 160,
    height: int = 120,
    fps: int = 8,
    num_probe: int = 0,
    num_twins: int = 0,
) -> dict[str, Split]:
    """Generate (once) and load the synthetic dataset -> {"train": Split, "test": Split[, "probe": Split]}.

    Train videos have 2 differently phrased captions each, test videos exactly one; test videos
    have distinct attribute combinations (up to 640). `num_probe` > 0 adds the direction probe
    (module docstring): 2 * num_probe videos, one caption each, `info["twin"][i]` = i's twin;
    `num_twins` > 0 a `twins` training split built the same way (2 * num_twins videos).
    Same arguments -> identical files' content; probe and twins leave train and test as they are.
    """
    _check_args(num_train, num_test, frames, width, height, fps)
    if num_probe < 0 or num_twins < 0:
        raise ValueError(f"load_synthetic: num_probe and num_twins must be >= 0, got {num_probe}, {num_twins}")
    root = Path(root)
    key = f"v{GENERATOR_VERSION}_n{num_train}-{num_test}_f{frames}_{width}x{height}_{fps}fps_s{seed}"
    key += (f"_p{num_probe}" if num_probe else "") + (f"_t{num_twins}" if num_twins else "")  # else as before
    folder = root / key
    if (folder / "captions.json").is_file():
        log.info("synthetic: reusing %s", folder)
        return _splits(folder)
    if folder.exists():
        raise FileExistsError(f"synthetic: {folder} exists but has no captions.json (not written by "
                              "load_synthetic, or edited since); delete it to regenerate")
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root, key)
    temp = root / temp_name(key)
    shutil.rmtree(temp, ignore_errors=True)
    params = dict(num_train=num_train, num_test=num_test, seed=seed, frames=frames, width=width,
                  height=height, fps=fps, version=GENERATOR_VERSION)
    plan = split_plan(num_train, num_test, seed, frames, width, height)
    for name, pairs in (("probe", num_probe), ("twins", num_twins)):
        if pairs:
            params[f"num_{name}"] = pairs
            plan[name] = twin_plan(name, pairs, seed, frames, width, height)
    started = time.perf_counter()
    try:
        _generate(temp, plan, params)
    except BaseException:  # incl. KeyboardInterrupt: leave no half-written folder behind
        shutil.rmtree(temp, ignore_errors=True)
        raise
    try:
        temp.rename(folder)
    except OSError:  # another process (e.g. another DDP rank) finished first: keep its copy
        if not (folder / "captions.json").is_file():
            raise
        shutil.rmtree(temp, ignore_errors=True)
    log.info("synthetic: generated %d videos in %.1f s into %s",
             num_train + num_test + 2 * (num_probe + num_twins), time.perf_counter() - started, folder)
    return _splits(folder)
