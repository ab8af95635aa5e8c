"""A user's folder with a corrupt video: the gallery build skips, names and counts it (strict=true or
too many stops it, one Error: block); a corrupt query video, a folder given as a query, or a file
that is no video is one Error: block, not a traceback or a text search; text hits print the video's
id, its path and its first caption, and the result page links each hit to its file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_one_block, cli, command_in_process
from tests.library.data.test_custom_data import write_clip
from vop.commands.retrieve import retrieve

TINY = ["model=clip_tiny", "method=zeroshot", "trainer.device=cpu", "trainer.progress=false", "data.num_frames=4",
        "data.eval_batch_size=4", "data.num_workers=0"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own") / "clips"
    for i, name in enumerate(["beach/wave.mp4", "city/tram one.mkv", "city/bus.avi", "park/dog.mp4"]):
        write_clip(root / name, i)
    (root / "park" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    (root.parent / "captions.json").write_text(json.dumps(
        {"beach/wave": ["waves on the sand", "a beach"], "city/tram one.mkv": "a tram", "park/broken": "lost"}))
    return root


def retrieve_here(tmp: Path, *args: str):
    """retrieve.py's command on `args` in this interpreter (the build in `gallery` is the real
    process; this file's other runs check messages and printed output)."""
    return command_in_process(retrieve, "retrieve", tmp, *args)


@pytest.fixture(scope="module")
def gallery(folder) -> tuple[Path, str]:
    path = folder.parent / "g.safetensors"
    proc = cli("retrieve.py", "action=build", f"videos={folder}", f"captions={folder.parent / 'captions.json'}",
               f"gallery={path}", "max_bad_fraction=0.25", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path, proc.stderr


def test_the_build_skips_names_and_counts_an_unreadable_video(gallery, folder, tmp_path):
    path, log = gallery
    assert f"skipped unreadable video {folder / 'park' / 'broken.mp4'}" in log
    assert "skipped 1 of 5 videos that cannot be read, and their 1 captions" in log
    proc = retrieve_here(tmp_path, f"gallery={path}", "query=a tram", "topk=5", f"html={folder.parent / 'page.html'}",
                         *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hits = [line for line in proc.stdout.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert len(hits) == 4 and "park/broken" not in proc.stdout  # four readable videos, the broken one left out
    tram = next(i for i, line in enumerate(proc.stdout.splitlines()) if "city/tram one" in line)
    line, caption = proc.stdout.splitlines()[tram:tram + 2]
    assert line.endswith(f"city/tram one  {folder / 'city' / 'tram one.mkv'}") and caption.strip() == '"a tram"'
    page = (folder.parent / "page.html").read_text()
    assert f"result page: {folder.parent / 'page.html'}" in proc.stdout
    assert (folder / "city" / "tram one.mkv").resolve().as_uri().replace(" ", "%20") in page


@pytest.mark.parametrize("option, needle", [("strict=true", "strict=true stops at any"),
                                            ("max_bad_fraction=0.1", "more than max_bad_fraction=0.1")])
def test_strict_or_too_many_unreadable_videos_stop_the_build(folder, tmp_path, option, needle):
    proc = retrieve_here(tmp_path, "action=build", f"videos={folder}", f"gallery={tmp_path / 'g.safetensors'}", option,
                         *TINY)
    assert_one_block(proc, needle, "park/broken.mp4")
    assert not (tmp_path / "g.safetensors").exists()


def test_a_bad_query_is_one_error_block(gallery, folder, tmp_path):
    path, _ = gallery
    empty = tmp_path / "empty.mpg"
    empty.write_bytes(b"")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    cases = [(folder / "park" / "broken.mp4", "cannot be decoded"), (empty, "cannot be decoded"),
             (folder / "city.mp4", "no such file"), (folder, "names a folder"), (notes, "no video suffix")]
    for query, needle in cases:
        proc = retrieve_here(tmp_path, f"gallery={path}", f"query={query}", *TINY)
        assert_one_block(proc, needle, str(query))
    (tmp_path / "dir.mp4").mkdir()
    assert_one_block(retrieve_here(tmp_path, f"gallery={path}", f"query={tmp_path / 'dir.mp4'}", *TINY), "is a folder")


def test_a_long_query_is_shortened_where_printed(gallery, tmp_path):
    path, _ = gallery
    proc = retrieve_here(tmp_path, f"gallery={path}", "query=" + ("a tram " * 3000).strip(), "topk=1", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = proc.stdout.splitlines()[0]  # 20,999 characters: the first 80 and how many are left out
    assert first == "t2v query: " + ("a tram " * 12)[:80] + "… (20,919 more characters)"
