"""A collection with links: linked folders and files are followed, a loop or a second name for a
folder is listed once and named, a broken link is named, files that are no videos are counted."""
from __future__ import annotations

import logging

from vop.data.video_files import list_videos


def test_links_are_followed_once_and_what_is_left_out_is_named(tmp_path, caplog):
    root, elsewhere = tmp_path / "clips", tmp_path / "elsewhere"
    (root / "beach").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "beach" / "wave.mp4").write_bytes(b"v")
    (elsewhere / "tram.mkv").write_bytes(b"v")
    (root / "trip").symlink_to(elsewhere, target_is_directory=True)  # a linked folder: followed
    (root / "beach" / "again").symlink_to("..", target_is_directory=True)  # a loop
    (root / "alias").symlink_to("beach", target_is_directory=True)  # a second name for beach
    (root / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")  # a broken link
    (root / "linked.avi").symlink_to(elsewhere / "tram.mkv")  # a linked file: its own id
    (root / "notes.txt").write_text("not a video")
    with caplog.at_level(logging.INFO, logger="vop.data.video_files"):
        folder = list_videos(root)
    assert list(folder.files) == ["beach/wave", "linked", "trip/tram"]
    assert f"{root / 'beach' / 'again'}: left out of the videos under {root}: a link to {root}, which is " \
           "listed already" in caplog.text
    assert f"{root / 'alias'}: left out" in caplog.text and f"a link to {root / 'beach'}" in caplog.text
    assert f"{root / 'gone.mp4'}: left out of the videos under {root}: a broken link (to {tmp_path / 'deleted.mp4'})" \
        in caplog.text
    assert f"3 entries under {root} left out (named above)" in caplog.text
    assert "1 files under" in caplog.text and "notes.txt" in caplog.text
