"""The rows of a user's captions file (`data=custom data.captions=`, `retrieve.py captions=`), each
with the line of the file it starts on, so every message about a row names the file and that line.

- `.json`, an object `{video id: caption or [captions]}`: a row per caption, at the line of its key
  (the object is walked member by member with the JSON decoder, so a key given twice is seen twice:
  both are kept, with a WARNING, where a JSON reader would keep only the last);
- `.csv`, a header with `video`, `caption` and optionally `split`: a row per record, at the physical
  line where it starts (a quoted caption may span several lines); a record with more non-empty
  fields than the header is refused (an unquoted comma would otherwise cut a caption silently);
- `.jsonl`, an object per line with the same keys: a row per caption, at its line (lines end at
  "\\n" only: a caption may hold U+2028 and the like, which JSON allows unescaped).

Captions are stripped; video ids are not (vop/data/annotations/common.py, `checked_video_id`).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vop.data.annotations.common import AnnotationError, checked_video_id, few, parse_json, read_csv_lines, read_text
from vop.data.caption_preview import caption_preview

log = logging.getLogger(__name__)

DATASET = "custom data"
FORMATS = (".json", ".csv", ".jsonl")
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace


@dataclass(frozen=True)
class Row:
    """One caption as the file gives it, and the line of the file the row starts on."""

    video: str  # as written: an id, or a file's path with its suffix
    caption: str
    split: str | None
    path: Path
    line: int

    @property
    def where(self) -> str:
        """The file and the line, for messages: "/data/clips.csv line 7"."""
        return f"{self.path} line {self.line}"


def read_rows(path: Path) -> list[Row]:
    """Every caption of a .json, .csv or .jsonl captions file, in file order; AnnotationError if none."""
    reader = {".json": _json_rows, ".csv": _csv_rows, ".jsonl": _jsonl_rows}[path.suffix.lower()]
    rows = reader(path)
    if not rows:
        raise AnnotationError(f"{DATASET}: {path} holds no captions")
    return rows


def _texts(value: Any, where: str, key: str) -> list[str]:
    """A caption or a list of captions as written (the value of `key`), each a non-empty text."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise AnnotationError(f"{DATASET}: {where}, key {key}: expected a caption text or a list of them, got "
                              f"{caption_preview(json.dumps(value, ensure_ascii=False))}")
    for text in items:
        if not text.strip():
            raise AnnotationError(f"{DATASET}: {where}, key {key}: empty caption; write one or remove the row")
    return [t.strip() for t in items]


def object_members(text: str) -> list[tuple[str, Any, int]]:
    """(key, value, line of the key) of each member of the JSON object `text`, in file order, a repeated
    key each time. `text` must be valid JSON (parse it first: that error names line and column)."""
    pos, line, counted = _SPACE.match(text).end(), 1, 0
    members: list[tuple[str, Any, int]] = []
    pos = _SPACE.match(text, pos + 1).end()  # past "{"
    while text[pos] != "}":
        line, counted = line + text.count("\n", counted, pos), pos
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _SPACE.match(text, _SPACE.match(text, pos).end() + 1).end()  # past ":"
        value, pos = _DECODER.raw_decode(text, pos)
        members.append((key, value, line))
        pos = _SPACE.match(text, pos).end()
        if text[pos] == ",":
            pos = _SPACE.match(text, pos + 1).end()
    return members


def _json_rows(path: Path) -> list[Row]:
    text = read_text(path, DATASET)
    data = parse_json(text, path, DATASET, advice="correct it there")
    if not isinstance(data, dict):
        raise AnnotationError(f"{DATASET}: {path}: expected a JSON object {{video id: caption or [captions]}}, got "
                              f"a {type(data).__name__}")
    rows, lines = [], {}
    for video, value, line in object_members(text):
        where = f"{path} line {line}"
        checked_video_id(video, where, DATASET)
        lines.setdefault(video, []).append(line)
        rows.extend(Row(video, caption, None, path, line) for caption in _texts(value, where, repr(video)))
    repeated = [f"{video!r} on lines {', '.join(map(str, at))}" for video, at in lines.items() if len(at) > 1]
    if repeated:
        log.warning("%s: %s gives %d key(s) more than once: %s; vop reads the captions of each (a JSON reader "
                    "keeps only the last): merge them into one list", DATASET, path, len(repeated), few(repeated, 3))
    return rows


def _csv_rows(path: Path) -> list[Row]:
    records = read_csv_lines(path, ["video", "caption"], DATASET)
    rows = []
    for line, record in records:
        where = f"{path} line {line}"
        video = checked_video_id(record["video"], where, DATASET)
        split = record["split"].strip() if "split" in record else None
        rows.extend(Row(video, text, split, path, line) for text in _texts(record["caption"], where, "'caption'"))
    return rows


def _jsonl_rows(path: Path) -> list[Row]:
    rows = []
    for line, text in enumerate(read_text(path, DATASET).split("\n"), start=1):
        if not text.strip():
            continue
        where = f"{path} line {line}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise AnnotationError(f"{DATASET}: {where} is not valid JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(record, dict):
            raise AnnotationError(f"{DATASET}: {where}: expected an object with the keys video, caption[, split]")
        for key in ("video", "caption"):
            if key not in record:
                raise AnnotationError(f"{DATASET}: {where} lacks the key {key!r}; its keys: "
                                      f"{caption_preview(', '.join(record))}")
        if not isinstance(record["video"], str):
            raise AnnotationError(f"{DATASET}: {where}, key 'video': expected a text, got "
                                  f"{caption_preview(json.dumps(record['video'], ensure_ascii=False))}")
        video = checked_video_id(record["video"], where, DATASET)
        split = record.get("split")
        split = split.strip() if isinstance(split, str) else split
        rows.extend(Row(video, caption, split, path, line)
                    for caption in _texts(record["caption"], where, "'caption'"))
    return rows
