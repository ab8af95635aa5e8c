"""ActivityNet Captions as paragraph-to-video retrieval: each video's sentences form one query.

`train.json` / `val_1.json` map `v_<id>` to {duration, timestamps, sentences}; the query is the
sentences joined with spaces and the whole video is the target (the protocol of CLIP4Clip and the
VoP paper). Videos are found as `v_<id>.<ext>` or `<id>.<ext>` (downloads differ).
`train_ids.json` / `val_ids.json` list 15 more ids than the jsons annotate; they are not needed.
"""
from __future__ import annotations

from pathlib import Path

from vop.data.annotations.common import (
    AnnotationError,
    VideoFinder,
    annotation_and_video_dirs,
    grouped_split,
    paragraph,
    read_json,
    require_file,
)
from vop.data.split import Split

DATASET = "ActivityNet Captions"
SOURCE = "the ActivityNet Captions annotations (cs.stanford.edu/people/ranjaykrishna/densevid/captions.zip)"
LAYOUT = """\
<data.root>/
  annotations/
    train.json                 (training, 10,009 videos)
    val_1.json                 (the test split of the protocol, 4,917 videos)
  videos/
    v_<id>.mp4 or <id>.mkv ... (either naming, any common container)"""


def load_activitynet(
    root: str | Path,
    annotation_dir: str | Path | None = None,
    video_dir: str | Path | None = None,
    splits: dict[str, str] | None = None,
) -> dict[str, Split]:
    """Return {split name: Split} for the files in `splits` ({"train": "train.json", "val_1": "val_1.json"})."""
    ann, videos = annotation_and_video_dirs(root, annotation_dir, video_dir, DATASET, LAYOUT)
    splits = dict(splits or {"train": "train.json", "val_1": "val_1.json"})
    finder = VideoFinder(videos)
    return {name: _split(name, ann / file, finder) for name, file in splits.items()}


def _split(name: str, path: Path, finder: VideoFinder) -> Split:
    require_file(path, f"the {name} split of {SOURCE}", DATASET, LAYOUT)
    data = read_json(path, DATASET)
    if not isinstance(data, dict):
        raise AnnotationError(f"{DATASET}: {path} should map 'v_<id>' to its annotation, got a {type(data).__name__}")
    captions: dict[str, list[str]] = {}
    for key, entry in data.items():
        sentences = entry.get("sentences") if isinstance(entry, dict) else None
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise AnnotationError(f"{DATASET}: {path}: video {key!r} has no list of 'sentences'")
        text = paragraph(sentences)
        if not text:
            raise AnnotationError(f"{DATASET}: {path}: video {key!r} has only empty sentences")
        captions[key] = [text]
    bare = {key: key[2:] if key.startswith("v_") else key for key in captions}
    paths = {key: finder.find(f"v_{bare[key]}", bare[key]) for key in captions}
    info = {"dataset": "activitynet", "captions_from": str(path), "paragraphs": True}
    return grouped_split(name, captions, paths, info)
