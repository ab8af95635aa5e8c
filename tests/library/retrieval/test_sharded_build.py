"""Sharded builds (`retrieve.py action=build shards=K`, and under torchrun one shard per process): the shards
load as the gallery a one-file build writes (rows, captions, links, embeddings), a rerun keeps finished shards,
query, serve and update read a manifest as one gallery (tiny zero-shot model, the small synthetic test split)."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from starlette.testclient import TestClient

from tests.helpers import REPO_ROOT, SMALL_MODEL, SMALL_SYNTHETIC, assert_one_block, command_in_process
from tests.library.retrieval.test_gallery_update import counting
from tests.library.retrieval.test_retrieval import retrieve_cfg
from vop.commands.retrieve import retrieve
from vop.engine.assembly import load_splits
from vop.errors import MissingFileError
from vop.retrieval.gallery import Gallery
from vop.retrieval.gallery_shards import (build_shards, is_manifest, load_gallery, read_manifest, shard_name,
                                          shards_dir)
from vop.retrieval.pipeline import RetrievalPipeline
from vop.retrieval.query_encoder import Encoder
from vop.retrieval.server import SearchService, make_app

TINY = ["model=clip_tiny", "method=zeroshot", *SMALL_MODEL]


def build(tmp: Path, data: Path, gallery: Path, *extra: str):
    overrides = ["action=build", f"gallery={gallery}", "split=test", "chunk_videos=3", *TINY, *extra]
    return retrieve(retrieve_cfg(tmp, data, overrides), overrides)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> tuple[Path, Path]:
    """The test split's gallery as one file, and the data folder (written once)."""
    tmp = tmp_path_factory.mktemp("single")
    build(tmp, tmp / "data", tmp / "one.safetensors")
    return tmp / "one.safetensors", tmp / "data"


def assert_same_rows(sharded: Gallery, plain: Gallery) -> None:
    assert sharded.video_ids == plain.video_ids and sharded.video_paths == plain.video_paths
    assert sharded.captions == plain.captions and sharded.caption_video == plain.caption_video
    assert sharded.video_stats == plain.video_stats and sharded.encoder == plain.encoder
    torch.testing.assert_close(sharded.video_emb, plain.video_emb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sharded.text_emb, plain.text_emb, rtol=1e-5, atol=1e-6)


def test_shards_in_one_process_equal_the_one_file_build_and_a_rerun_keeps_finished_ones(single, tmp_path,
                                                                                      monkeypatch, caplog):
    plain_path, data = single
    path = tmp_path / "g.safetensors"
    manifest = build(tmp_path, data, path, "shards=3")
    assert is_manifest(path) and [e.file for e in manifest.shards] == [shard_name(k, 3) for k in range(3)]
    assert [e.videos for e in manifest.shards] == [5, 5, 6]  # contiguous ranges of the 16 listed videos
    plain = Gallery.load(plain_path)
    assert_same_rows(load_gallery(path), plain)
    assert sorted(p.name for p in shards_dir(path).iterdir()) == [shard_name(k, 3) for k in range(3)]  # no .parts

    # Interrupted after two shards: the third is gone; a rerun encodes only its videos.
    (shards_dir(path) / shard_name(2, 3)).unlink()
    path.unlink()
    kept = {k: (shards_dir(path) / shard_name(k, 3)).stat().st_mtime_ns for k in (0, 1)}
    encoded = counting(monkeypatch)
    with caplog.at_level(logging.INFO, logger="vop.retrieval.gallery_shards"):
        build(tmp_path, data, path, "shards=3")
    assert sorted(encoded) == sorted(Path(p).name for p in plain.video_paths[10:])
    assert "shard 1 of 3 is finished, kept" in caplog.text and "shard 2 of 3 is finished, kept" in caplog.text
    assert {k: (shards_dir(path) / shard_name(k, 3)).stat().st_mtime_ns for k in (0, 1)} == kept
    assert_same_rows(load_gallery(path), plain)

    # Another shard count: new shards, the old ones removed once the manifest lists the new.
    encoded.clear()
    build(tmp_path, data, path, "shards=2")
    assert len(encoded) == 16
    assert sorted(p.name for p in shards_dir(path).iterdir()) == [shard_name(k, 2) for k in range(2)]
    assert_same_rows(load_gallery(path), plain)


def test_query_and_serve_over_shards_answer_as_over_the_one_file(single, tmp_path):
    plain_path, data = single
    path = tmp_path / "g.safetensors"
    build(tmp_path, data, path, "shards=2")
    one, many = RetrievalPipeline.from_gallery(plain_path, topk=4), RetrievalPipeline.from_gallery(path, topk=4)
    for query in (one.gallery.captions[3], one.gallery.captions[12], Path(one.gallery.video_paths[9])):
        a, b = one(query), many(query)
        assert (a.mode, a.ids, a.rows, a.video_ids, a.captions) == (b.mode, b.ids, b.rows, b.video_ids, b.captions)
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    answers = []
    for pipeline in (one, many):
        with TestClient(make_app(SearchService(pipeline)), base_url="http://127.0.0.1") as client:
            health = client.get("/api/health").json()
            search = client.get("/api/search", params={"q": one.gallery.captions[7], "k": 5}).json()
            similar = client.get("/api/similar", params={"row": 11, "k": 3}).json()
        answers.append((health, search, similar))
    (h1, s1, v1), (h2, s2, v2) = answers
    assert h1 == h2 and h2["videos"] == 16
    assert [(h["id"], h["row"], h["truth"]) for h in s1["hits"]] == [(h["id"], h["row"], h["truth"])
                                                                      for h in s2["hits"]]
    assert [h["score"] for h in s1["hits"]] == pytest.approx([h["score"] for h in s2["hits"]], abs=1e-5)
    assert sum(h["truth"] for h in s2["hits"]) <= 1 and len(s2["hits"]) == 5
    for key in ("videos", "hits"):  # row 11's nearest videos and its captions (their links offset in shard 2)
        assert [(h["id"], h["row"]) for h in v1[key]] == [(h["id"], h["row"]) for h in v2[key]] and v2[key]
    assert [h["truth"] for h in v1["hits"]] == [h["truth"] for h in v2["hits"]]


def test_update_rewrites_a_sharded_gallery_as_shards(single, tmp_path, monkeypatch):
    plain_path, data = single
    plain = Gallery.load(plain_path)
    folder = tmp_path / "clips"
    folder.mkdir()
    for p in plain.video_paths[:5]:
        shutil.copyfile(p, folder / Path(p).name)
    path = tmp_path / "g.safetensors"
    listing = ["gallery=" + str(path), f"videos={folder}", *TINY]
    retrieve(retrieve_cfg(tmp_path, data, ["action=build", "shards=2", *listing]), ["action=build", *listing])
    before = read_manifest(path)
    shutil.copyfile(plain.video_paths[5], folder / Path(plain.video_paths[5]).name)  # one new
    (folder / Path(plain.video_paths[1]).name).unlink()  # one deleted
    encoded = counting(monkeypatch)
    update = ["action=update", f"gallery={path}", f"videos={folder}"]
    updated = retrieve(retrieve_cfg(tmp_path, data, update), update)
    assert encoded == [Path(plain.video_paths[5]).name]
    after = read_manifest(path)
    assert len(after.shards) == 2 and {e.file for e in after.shards}.isdisjoint({e.file for e in before.shards})
    assert sorted(p.name for p in shards_dir(path).iterdir()) == sorted(e.file for e in after.shards)
    fresh_path = tmp_path / "fresh.safetensors"
    fresh = retrieve(retrieve_cfg(tmp_path, data, ["action=build", f"gallery={fresh_path}", f"videos={folder}",
                                                   *TINY]), [])
    loaded = load_gallery(path)
    assert loaded.video_ids == updated.video_ids == fresh.video_ids and len(loaded.video_ids) == 5
    torch.testing.assert_close(loaded.video_emb, fresh.video_emb, rtol=1e-5, atol=1e-6)


def torchrun_build(tmp: Path, data: Path, gallery: Path, nproc: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "retrieve.py", "action=build", f"gallery={gallery}", "split=test", "chunk_videos=3", "data=synthetic",
           *TINY, *SMALL_SYNTHETIC, "trainer.progress=false", f"paths.data_dir={data}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_torchrun_two_processes_write_the_one_process_gallery_as_two_shards(single, tmp_path):
    plain_path, data = single
    path = tmp_path / "g.safetensors"
    proc = torchrun_build(tmp_path, data, path, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(path)
    assert [(e.file, e.videos) for e in manifest.shards] == [(shard_name(0, 2), 8), (shard_name(1, 2), 8)]
    assert_same_rows(load_gallery(path), Gallery.load(plain_path))
    assert "shard 1 of 2: 8 videos" in proc.stderr and "16 videos, 16 captions in 2 shards" in proc.stderr
    assert "shard 2 of 2: 8 videos" not in proc.stderr  # rank 1 logs only warnings: one console, rank 0's


def test_rank_0_names_shards_another_machine_kept(single, tmp_path):
    """Rank 0 of two, alone here (no process group: the barrier passes): rank 1's shard never arrives in this
    file system, as on machines without shared storage."""
    _, data = single
    cfg = retrieve_cfg(tmp_path, data, TINY)
    split = load_splits(cfg, "test")["test"]
    path = tmp_path / "g.safetensors"
    with pytest.raises(MissingFileError, match=f"shards {shard_name(1, 2)} are not in .*storage every machine "
                                               "shares.*shards=2"):
        build_shards(Encoder(cfg), split, path, 2, rank=0, world=2, progress=False)
    assert (shards_dir(path) / shard_name(0, 2)).is_file() and not path.exists()


@pytest.mark.parametrize("action", ["action=update", "query=a red circle", "action=serve"])
def test_only_a_build_runs_under_torchrun(single, tmp_path, monkeypatch, action):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    proc = command_in_process(retrieve, "retrieve", tmp_path, action, f"gallery={single[0]}", *TINY)
    assert_one_block(proc, "runs in one process; only action=build splits its videos over torchrun's processes")
