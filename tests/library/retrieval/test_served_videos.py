"""What the search server may send for a gallery row (vop/retrieval/served_videos.py): real videos of
every container the page plays, and nothing else a gallery from someone else could name."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from vop.data.sample_collection import spec
from vop.data.synthetic import render, write_mp4
from vop.retrieval.served_videos import NotServed, ServedVideos


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("served")
    for suffix in (".mp4", ".mkv", ".avi"):  # H.264 in each container
        write_mp4(tmp / f"clip{suffix}", render(spec(0), 4, 64, 48), fps=8)
    (tmp / "notes.mp4").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp / "notes.txt").write_text("hello\n")
    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp / "photo.png")
    os.replace(tmp / "photo.png", tmp / "photo.mkv")
    Image.new("RGB", (32, 32), (0, 255, 0)).save(tmp / "photo.jpg")
    os.replace(tmp / "photo.jpg", tmp / "photo.mp4")
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "link.mp4").symlink_to(tmp / "notes.txt")
    (tmp / "folder.mp4").mkdir()
    return tmp


@pytest.mark.parametrize("name, media_type", [("clip.mp4", "video/mp4"), ("clip.mkv", "video/x-matroska"),
                                              ("clip.avi", "video/x-msvideo")])
def test_videos_are_served_with_their_type(files, name, media_type):
    served = ServedVideos().check(str(files / name))
    assert served.path == files / name and served.media_type == media_type


@pytest.mark.parametrize("name, reason", [
    ("notes.mp4", "does not open as a video container"),    # text under a video suffix
    ("photo.mkv", "png_pipe data, not a video container"),  # FFmpeg reads a picture as a one-frame "video"
    ("photo.mp4", "jpeg_pipe data, not a video container"),
    ("empty.mp4", "does not open as a video container"),
    ("link.mp4", "does not open as a video container"),     # a link to a text file
    ("notes.txt", "names no video file"),
    ("folder.mp4", "not a regular file"),
    ("gone.mp4", "gone since the gallery was built"),
])
def test_anything_else_is_refused_saying_why(files, name, reason):
    with pytest.raises(NotServed, match=reason):
        ServedVideos().check(str(files / name))


def test_the_verdict_follows_the_file(files, tmp_path):
    """Cached per (size, mtime, inode): a video replaced by text is refused at once."""
    path = tmp_path / "clip.mp4"
    path.write_bytes((files / "clip.mp4").read_bytes())
    videos = ServedVideos()
    assert videos.check(str(path)).path == path
    path.unlink()
    path.write_text("not a video any more\n")
    with pytest.raises(NotServed):
        videos.check(str(path))
