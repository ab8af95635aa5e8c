"""ActivityNet Captions as paragraph-to-video retrieval: each video's sentences form one query.

`train.json` / `val_1.json` map `v_<id>` to {duration, timestamps, sentences}; the query is the
sentences joined with spaces and the whole video is the target (the protocol of CLIP4Clip and the
VoP paper). Videos are found as `v_<id>.<ext>` or `<id>.<ext>` (downloads differ).
`train_ids.json` / `val_ids.json` list 15 more ids than the jsons annotate; they are not needed.
With `queries="moments"` each sentence is its own query with its `timestamps` span in seconds
(`Split.caption_spans`, kept within [0, duration]), for moment retrieval (docs/retrieval.md); a sentence
whose span is reversed or starts after the video ends is left out, counted and named (WARNING).
"""
from __future__ import annotations

import logging
from pathlib import Path

from vop.data.annotations.common import (
    AnnotationError,
    VideoFinder,
    annotation_and_video_dirs,
    check_queries,
    grouped_split,
    paragraph,
    read_json,
    require_file,
)
from vop.data.split import Split

log = logging.getLogger(__name__)
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
    queries: str = "paragraphs",
) -> dict[str, Split]:
    """Return {split name: Split} for the files in `splits` ({"train": "train.json", "val_1": "val_1.json"}):
    one paragraph per video (queries="paragraphs") or one query per sentence with its span ("moments")."""
    check_queries(queries, DATASET)
    ann, videos = annotation_and_video_dirs(root, annotation_dir, video_dir, DATASET, LAYOUT)
    splits = dict(splits or {"train": "train.json", "val_1": "val_1.json"})
    finder = VideoFinder(videos)
    read = _moment_split if queries == "moments" else _split
    return {name: read(name, ann / file, finder) for name, file in splits.items()}


def _annotations(name: str, path: Path) -> dict:
    require_file(path, f"the {name} split of {SOURCE}", DATASET, LAYOUT)
    data = read_json(path, DATASET)
    if not isinstance(data, dict):
        raise AnnotationError(f"{DATASET}: {path} should map 'v_<id>' to its annotation, got a {type(data).__name__}")
    return data


def _paths(keys, finder: VideoFinder) -> dict[str, Path]:
    bare = {key: key[2:] if key.startswith("v_") else key for key in keys}
    return {key: finder.find(f"v_{bare[key]}", bare[key]) for key in keys}


def _split(name: str, path: Path, finder: VideoFinder) -> Split:
    data = _annotations(name, path)
    captions: dict[str, list[str]] = {}
    for key, entry in data.items():
        sentences = entry.get("sentences") if isinstance(entry, dict) else None
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise AnnotationError(f"{DATASET}: {path}: video {key!r} has no list of 'sentences'")
        text = paragraph(sentences)
        if not text:
            raise AnnotationError(f"{DATASET}: {path}: video {key!r} has only empty sentences")
        captions[key] = [text]
    info = {"dataset": "activitynet", "captions_from": str(path), "paragraphs": True}
    return grouped_split(name, captions, _paths(captions, finder), info)


def _moment_split(name: str, path: Path, finder: VideoFinder) -> Split:
    """Each sentence a query, its `timestamps` pair its span (seconds, within [0, duration])."""
    data = _annotations(name, path)
    videos, captions, links, spans, dropped = [], [], [], [], []
    for key, entry in data.items():
        sentences, stamps = _sentences_and_times(entry, key, path)
        duration = entry["duration"]
        kept = 0
        for i, (text, (start, end)) in enumerate(zip(sentences, stamps)):
            start, end = max(0.0, float(start)), min(float(end), float(duration))
            if not text.strip() or start >= end:
                dropped.append(f"{key} sentence {i}")
                continue
            captions.append(text.strip())
            links.append(len(videos))
            spans.append((start, end))
            kept += 1
        if kept:
            videos.append(key)
    if dropped:
        log.warning("%s: %s: %d sentences left out (empty, or a span reversed or after the video's end): %s%s",
                    DATASET, path, len(dropped), ", ".join(dropped[:5]), " ..." if len(dropped) > 5 else "")
    paths = _paths(videos, finder)
    info = {"dataset": "activitynet", "captions_from": str(path), "paragraphs": False, "left_out": len(dropped)}
    return Split(name, videos, [paths[v] for v in videos], captions, links, info, caption_spans=spans)


def _sentences_and_times(entry: object, key: str, path: Path) -> tuple[list[str], list[list[float]]]:
    sentences = entry.get("sentences") if isinstance(entry, dict) else None
    stamps = entry.get("timestamps") if isinstance(entry, dict) else None
    duration = entry.get("duration") if isinstance(entry, dict) else None
    number = (int, float)
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise AnnotationError(f"{DATASET}: {path}: video {key!r} has no list of 'sentences'")
    if not isinstance(duration, number) or isinstance(duration, bool) or not (
            isinstance(stamps, list) and len(stamps) == len(sentences) and all(
                isinstance(t, list) and len(t) == 2 and all(isinstance(v, number) and not isinstance(v, bool)
                                                             for v in t) for t in stamps)):
        raise AnnotationError(f"{DATASET}: {path}: video {key!r} needs a numeric 'duration' and one [start, end] "
                              "pair of seconds in 'timestamps' per sentence")
    return sentences, stamps
