"""`retrieve.py action=update`: a gallery brought up to date equals a fresh build and encodes only what changed
(tiny zero-shot model, small synthetic videos copied into a folder)."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import SMALL_MODEL
from tests.library.retrieval.test_retrieval import retrieve_cfg
from vop.commands.retrieve import retrieve
from vop.data.bad_videos import BadVideosError
from vop.engine.assembly import load_splits
from vop.errors import InputError
from vop.retrieval.gallery import Gallery, GalleryMismatchError
from vop.retrieval.query_encoder import Encoder

TINY = ["model=clip_tiny", "method=zeroshot", *SMALL_MODEL]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The synthetic test split's 16 video files (written once) and the data folder they live in."""
    tmp = tmp_path_factory.mktemp("data")
    split = load_splits(retrieve_cfg(tmp, tmp / "data", TINY), "test")["test"]
    return tmp / "data", list(split.video_paths)


def run(tmp: Path, data: Path, overrides: list[str]) -> Gallery:
    return retrieve(retrieve_cfg(tmp, data, overrides), overrides)


def counting(monkeypatch) -> list[str]:
    """The names of the video files the encoder decodes from now on."""
    names: list[str] = []
    real = Encoder.encode_readable_chunks

    def encode(self, split, chunks, progress=False):
        names.extend(Path(split.video_paths[i]).name for rows in chunks for i in rows)
        return real(self, split, chunks, progress)

    monkeypatch.setattr(Encoder, "encode_readable_chunks", encode)
    return names


def assert_same(updated: Gallery, fresh: Gallery) -> None:
    assert updated.video_ids == fresh.video_ids and updated.video_paths == fresh.video_paths
    assert updated.captions == fresh.captions and updated.caption_video == fresh.caption_video
    assert updated.video_stats == fresh.video_stats and len(updated.video_stats) == len(updated.video_ids)
    assert torch.allclose(updated.video_emb, fresh.video_emb, atol=1e-6)
    assert torch.allclose(updated.text_emb, fresh.text_emb, atol=1e-6)
    assert updated.encoder == fresh.encoder


@pytest.fixture
def folder_gallery(videos, tmp_path) -> tuple[Path, Path, Path]:
    """A folder of 5 copied videos v0..v4 with captions for three, and its gallery (chunks of 2 videos)."""
    data, files = videos
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(5):
        shutil.copyfile(files[i], folder / f"v{i}.mp4")
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"v0": "zero", "v1": ["one", "uno"], "v3": "three"}))
    gallery = tmp_path / "g.safetensors"
    run(tmp_path, data, ["action=build", f"gallery={gallery}", f"videos={folder}", f"captions={captions}",
                         "chunk_videos=2", *TINY])
    return folder, captions, gallery


def test_update_equals_a_fresh_build_and_encodes_only_new_and_changed_videos(videos, folder_gallery, tmp_path,
                                                                             monkeypatch):
    data, files = videos
    folder, captions, gallery = folder_gallery
    before = Gallery.load(gallery)
    assert before.video_ids == [f"v{i}" for i in range(5)] and before.video_stats[0][0] == files[0].stat().st_size
    shutil.copyfile(files[5], folder / "v5.mp4")  # two new videos
    shutil.copyfile(files[6], folder / "v6.mp4")
    changed = folder / "v2.mp4"  # new content under an old name, with a later modification time
    mtime = changed.stat().st_mtime_ns
    shutil.copyfile(files[7], changed)
    os.utime(changed, ns=(mtime + 10**9, mtime + 10**9))
    (folder / "v3.mp4").unlink()  # one deleted, with its caption
    captions.write_text(json.dumps({"v0": "zero", "v1": ["one", "uno"], "v2": "two, anew", "v5": "five"}))
    encoded = counting(monkeypatch)
    update = ["action=update", f"gallery={gallery}", f"videos={folder}", f"captions={captions}", "chunk_videos=2"]
    updated = run(tmp_path, data, update)  # no model= or method=: the gallery's own encoder
    assert sorted(encoded) == ["v2.mp4", "v5.mp4", "v6.mp4"]
    assert updated.video_ids == ["v0", "v1", "v2", "v4", "v5", "v6"]
    assert torch.equal(updated.video_emb[0], before.video_emb[0])  # v0 kept as it was
    assert not torch.allclose(updated.video_emb[2], before.video_emb[2], atol=1e-3)  # v2 re-encoded: new content
    assert_same(Gallery.load(gallery), updated)
    assert not (tmp_path / "g.safetensors.parts").exists()

    encoded.clear()
    fresh = run(tmp_path, data, ["action=build", f"gallery={tmp_path / 'fresh.safetensors'}", f"videos={folder}",
                                 f"captions={captions}", *TINY])
    assert len(encoded) == 6
    assert_same(updated, fresh)

    encoded.clear()
    again = run(tmp_path, data, update)  # nothing changed: nothing encoded, the same gallery
    assert encoded == []
    assert_same(again, fresh)


def test_a_gallery_without_file_stats_is_re_encoded_once_saying_so(videos, folder_gallery, tmp_path, monkeypatch,
                                                                   caplog):
    data, _ = videos
    folder, captions, gallery = folder_gallery
    old = Gallery.load(gallery)
    old.video_stats = None  # as vop wrote galleries before it kept them
    old.save(gallery)
    assert "video_stats" not in json.loads(_info(gallery))
    encoded = counting(monkeypatch)
    update = ["action=update", f"gallery={gallery}", f"videos={folder}", f"captions={captions}"]
    with caplog.at_level(logging.INFO, logger="vop.retrieval.gallery_update"):
        updated = run(tmp_path, data, update)
    assert sorted(encoded) == [f"v{i}.mp4" for i in range(5)]
    said = [r.getMessage() for r in caplog.records if "keeps no file sizes" in r.getMessage()]
    assert len(said) == 1 and "re-encoding all 5 videos" in said[0]
    assert_same(updated, Gallery.load(gallery))
    assert torch.allclose(updated.video_emb, old.video_emb, atol=1e-6) and updated.video_stats is not None
    encoded.clear()
    run(tmp_path, data, update)
    assert encoded == []


def _info(path: Path) -> str:
    """The gallery file's raw `info` metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["info"]


def test_update_with_another_encoder_is_refused_naming_both(videos, folder_gallery, tmp_path, monkeypatch):
    data, _ = videos
    folder, captions, gallery = folder_gallery
    written = gallery.read_bytes()
    shutil.copyfile(videos[1][5], folder / "v5.mp4")
    encoded = counting(monkeypatch)
    update = ["action=update", f"gallery={gallery}", f"videos={folder}", f"captions={captions}",
              "model=clip_tiny", "method=bias", *SMALL_MODEL]
    with pytest.raises(GalleryMismatchError) as err:
        run(tmp_path, data, update)
    assert isinstance(err.value, InputError)
    assert "method=zeroshot" in str(err.value) and "method=bias" in str(err.value)
    assert encoded == [] and gallery.read_bytes() == written


def test_update_of_a_dataset_split_reads_the_galleries_own_data(videos, tmp_path, monkeypatch):
    """A split gallery (data=, split=) updated without data= lists the split its data group names: unchanged."""
    data, _ = videos
    gallery = tmp_path / "split.safetensors"
    built = run(tmp_path, data, ["action=build", f"gallery={gallery}", "split=test", *TINY])
    encoded = counting(monkeypatch)
    updated = run(tmp_path, data, ["action=update", f"gallery={gallery}", "split=test"])
    assert encoded == [] and len(updated.video_ids) == 16
    assert_same(updated, built)


def test_update_of_a_text_conditioned_gallery_keeps_its_frames(videos, tmp_path, monkeypatch):
    """method=xpool (format 2): the frame embeddings [N, T, D] are kept or re-encoded per video like the means."""
    data, files = videos
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(3):
        shutil.copyfile(files[i], folder / f"v{i}.mp4")
    xpool = ["model=clip_tiny", "method=xpool", *SMALL_MODEL]
    gallery = tmp_path / "x.safetensors"
    before = run(tmp_path, data, ["action=build", f"gallery={gallery}", f"videos={folder}", *xpool])
    (folder / "v0.mp4").unlink()
    shutil.copyfile(files[3], folder / "v3.mp4")
    encoded = counting(monkeypatch)
    updated = run(tmp_path, data, ["action=update", f"gallery={gallery}", f"videos={folder}"])
    assert encoded == ["v3.mp4"] and updated.frame_emb is not None
    assert torch.equal(updated.frame_emb[:2], before.frame_emb[1:])
    fresh = run(tmp_path, data, ["action=build", f"gallery={tmp_path / 'fresh.safetensors'}", f"videos={folder}",
                                 *xpool])
    assert_same(updated, fresh)
    assert torch.allclose(Gallery.load(gallery).frame_emb, fresh.frame_emb, atol=1e-6)


def test_update_skips_and_counts_unreadable_videos_as_a_build_does(videos, folder_gallery, tmp_path, monkeypatch,
                                                                   caplog):
    data, files = videos
    folder, captions, gallery = folder_gallery
    written = gallery.read_bytes()
    (folder / "broken.mp4").write_bytes(b"not a video")
    shutil.copyfile(files[5], folder / "v5.mp4")
    update = ["action=update", f"gallery={gallery}", f"videos={folder}", f"captions={captions}", "max_bad_fraction=0.5"]
    with pytest.raises(BadVideosError, match="broken.mp4"):
        run(tmp_path, data, [*update, "strict=true"])
    assert gallery.read_bytes() == written  # a refused update leaves the gallery as it was
    encoded = counting(monkeypatch)
    with caplog.at_level(logging.INFO):
        updated = run(tmp_path, data, update)
    assert encoded == []  # the refused update's chunk (broken.mp4, v5.mp4; same files) is reused, as a build's
    assert any("1 unreadable videos skipped" in r.getMessage() for r in caplog.records)
    fresh = run(tmp_path, data, ["action=build", f"gallery={tmp_path / 'fresh.safetensors'}", f"videos={folder}",
                                 f"captions={captions}", "max_bad_fraction=0.5", *TINY])
    assert "broken" not in updated.video_ids and "v5" in updated.video_ids
    assert_same(updated, fresh)
