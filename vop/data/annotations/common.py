"""Helpers shared by the dataset parsers: existence checks with actionable errors, file readers.

Every parser (MSR-VTT, DiDeMo, ActivityNet, LSMDC) fails the same way when data is missing, so a
user who has not downloaded a dataset gets one message that says what to fetch and where to put it.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from vop.data.split import Split
from vop.data.video_files import VIDEO_SUFFIXES
from vop.errors import UserError

README_DATASETS = "docs/datasets.md"


class DataNotFoundError(UserError, FileNotFoundError):
    """A dataset folder or annotation file is missing; the message says how to get it."""


class AnnotationError(UserError, ValueError):
    """An annotation file exists but its content does not fit the expected format."""


def _layout_block(layout: str) -> str:
    # Indent so the tree stands out from the sentence above it in a traceback.
    if not layout:
        return ""
    lines = "\n".join("    " + line for line in layout.strip("\n").splitlines())
    return f"\nExpected layout:\n{lines}"


def require_dir(path: str | Path, dataset: str, layout: str = "") -> Path:
    """Return `path` as a Path if it is a directory, else raise DataNotFoundError.

    Meant for a dataset's data root: a missing root almost always means the dataset was never
    downloaded or `data.root` points to the wrong place, so the message says both.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    problem = "is not a directory" if path.exists() else "does not exist"
    raise DataNotFoundError(
        f"{dataset} data root {path} {problem}: the dataset is not downloaded here, or data.root "
        f"points elsewhere. Download it as described in {README_DATASETS}, then pass "
        f"data.root=<folder laid out as below> on the command line or in the data config."
        f"{_layout_block(layout)}"
    )


def require_file(path: str | Path, what: str, dataset: str, layout: str = "") -> Path:
    """Return `path` as a Path if it is a file, else raise DataNotFoundError.

    `what` names the file's role and where to obtain it, e.g. "the MSR-VTT captions
    (MSRVTT_data.json, part of the MSR-VTT annotation download)".
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    raise DataNotFoundError(
        f"{dataset}: missing {path}. This should be {what}. "
        f"See {README_DATASETS} for how to get it.{_layout_block(layout)}"
    )


def read_text(path: Path, dataset: str) -> str:
    """A UTF-8 text file (a byte-order mark is dropped); AnnotationError with the path, the byte offset
    and its line otherwise. The message never holds the file's content (the decoder's error would)."""
    raw = Path(path).read_bytes()
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = bom + err.start
        line = raw.count(b"\n", 0, offset) + 1
        raise AnnotationError(f"{dataset}: {path} is not UTF-8 text: byte 0x{raw[offset]:02x} at byte offset {offset} "
                              f"(line {line}) cannot be decoded. Re-save the file as UTF-8 (or re-download "
                              "it)") from None


def read_csv(path: Path, columns: list[str], dataset: str) -> list[dict[str, str]]:
    """Read a headed CSV into row dicts, checking that the header holds `columns`."""
    # read_text tolerates a byte-order mark from files re-saved by spreadsheet tools.
    reader = csv.DictReader(io.StringIO(read_text(path, dataset), newline=""), restval="")  # short row: empty fields
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [c for c in columns if c not in header]
    if missing:
        raise AnnotationError(f"{dataset}: {path} lacks column(s) {missing}; header is {header}")
    reader.fieldnames = header
    return list(reader)


def read_csv_lines(path: Path, columns: list[str], dataset: str) -> list[tuple[int, dict[str, str]]]:
    """(line, record) of each record of a headed CSV, `line` the physical line of the file where the
    record starts (a quoted field may span lines; blank lines are skipped); the header must hold
    `columns`. A short record gets empty fields; a record with more non-empty fields than the header is
    an AnnotationError naming its line: an unquoted comma in a caption would otherwise cut it silently."""
    reader = csv.reader(io.StringIO(read_text(path, dataset), newline=""))
    header: list[str] | None = None
    records, end = [], 0
    for fields in reader:
        start, end = end + 1, reader.line_num
        if not fields:
            continue
        if header is None:
            header, header_line = [name.strip() for name in fields], start
            missing = [c for c in columns if c not in header]
            if missing:
                raise AnnotationError(f"{dataset}: {path} line {start} (the header) lacks column(s) {missing}; "
                                      f"header is {header}")
            continue
        if any(field.strip() for field in fields[len(header):]):
            raise AnnotationError(f"{dataset}: {path} line {start}: {len(fields)} fields, but the header (line "
                                  f"{header_line}) names {len(header)}; quote a field that holds a comma "
                                  '("a dog, running")')
        records.append((start, dict(zip(header, fields + [""] * (len(header) - len(fields))))))
    if header is None:
        raise AnnotationError(f"{dataset}: {path} lacks column(s) {columns}; it has no header row")
    return records


def parse_json(text: str, path: Path, dataset: str, advice: str = "re-download it") -> Any:
    """`text` (the file at `path`) as JSON, naming the file, line and column when it is not valid JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{dataset}: {path} is not valid JSON ({err}); {advice}") from None


def read_json(path: Path, dataset: str) -> Any:
    """Load a JSON file, naming the file when it is not valid JSON (e.g. a truncated download)."""
    return parse_json(read_text(path, dataset), path, dataset)


def checked_video_id(value: str, where: str, dataset: str) -> str:
    """A video id as written at `where` ("<file> row 3"); one with leading/trailing spaces is refused:
    ids name files, and a silently stripped id would name a file that is not there."""
    if not value:
        raise AnnotationError(f"{dataset}: {where}: empty video id")
    if value != value.strip():
        raise AnnotationError(f"{dataset}: {where}: video id \"{value}\" has leading or trailing spaces; "
                              "ids name the video files, so remove the spaces (or rename the file to match)")
    return value


def few(items: list[str], n: int = 5) -> str:
    """Show up to `n` items for an error message, e.g. "video1, video7, ... (12 in all)"."""
    shown = ", ".join(items[:n])
    return shown if len(items) <= n else f"{shown}, ... ({len(items)} in all)"


# Containers the peer downloads come in (the project's one list); lookups by stem try them all, so an
# ActivityNet copy in .mkv or a DiDeMo copy re-encoded to .mp4 loads without renaming files.
VIDEO_EXTENSIONS = VIDEO_SUFFIXES


class VideoFinder:
    """Finds a video in one folder by its name without extension; the folder is listed once.

    A missing folder finds nothing: every lookup then returns the default name, so annotation-level
    work (statistics, checks) runs with no videos downloaded.
    """

    def __init__(self, folder: Path, default_ext: str = ".mp4") -> None:
        self.folder, self.default_ext = Path(folder), default_ext
        self.by_stem: dict[str, str] = {}
        if self.folder.is_dir():
            # sorted + first wins: deterministic when one stem exists with two extensions.
            for name in sorted(os.listdir(self.folder)):
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS:
                    self.by_stem.setdefault(stem, name)

    def find(self, *stems: str) -> Path:
        """The first of `stems` present (any extension); else `<stems[0]><default_ext>`."""
        for stem in stems:
            if stem in self.by_stem:
                return self.folder / self.by_stem[stem]
        return self.folder / f"{stems[0]}{self.default_ext}"


def annotation_and_video_dirs(root: str | Path, annotation_dir: str | Path | None, video_dir: str | Path | None,
                              dataset: str, layout: str) -> tuple[Path, Path]:
    """`root/annotations` and `root/videos` unless overridden; the root must exist only when used."""
    root = Path(root).expanduser()
    if annotation_dir is None or video_dir is None:
        require_dir(root, dataset, layout)
    ann = Path(annotation_dir).expanduser() if annotation_dir is not None else root / "annotations"
    videos = Path(video_dir).expanduser() if video_dir is not None else root / "videos"
    return ann, videos


QUERIES = ("paragraphs", "moments")  # DiDeMo, ActivityNet: a video's sentences joined, or each with its span


def check_queries(queries: str, dataset: str) -> None:
    if queries not in QUERIES:
        raise AnnotationError(f"{dataset}: data.splits.queries={queries!r}; use paragraphs (one query per video, its "
                              "sentences joined) or moments (each sentence a query with its time span)")


def paragraph(sentences: list[str]) -> str:
    """Join a video's sentences into one query, as the paragraph-retrieval protocol does."""
    return " ".join(s.strip() for s in sentences if s and s.strip())


def grouped_split(name: str, captions: dict[str, list[str]], paths: dict[str, Path], info: dict) -> Split:
    """A Split from {video_id: its captions} (insertion order kept) and {video_id: file}."""
    video_ids = list(captions)
    texts: list[str] = []
    links: list[int] = []
    for index, video_id in enumerate(video_ids):
        texts.extend(captions[video_id])
        links.extend([index] * len(captions[video_id]))
    return Split(name, video_ids, [paths[v] for v in video_ids], texts, links, info)
