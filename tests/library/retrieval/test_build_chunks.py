"""A gallery build encodes all its chunks from one loader, so the data workers decode across chunk boundaries
instead of starting anew at each: every chunk equals its videos encoded on their own (batches crossing the
boundaries, unreadable videos inside, at the end of and filling a chunk), and a build makes one loader."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.helpers import SMALL_MODEL
from tests.library.retrieval.test_retrieval import retrieve_cfg
from vop.engine.assembly import load_splits
from vop.retrieval.gallery import build_gallery
from vop.retrieval.query_encoder import Encoder

BROKEN = {4, 8, 10, 15}  # all of chunk 4-5, the end of chunk 5-9, inside chunk 9-12, the last video
CHUNKS = [range(0, 4), range(4, 5), range(5, 9), range(9, 12), range(12, 16)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("data")
    load_splits(retrieve_cfg(tmp, tmp / "data", ["model=clip_tiny", *SMALL_MODEL]), "test")  # writes the videos
    return tmp


def encoder_and_split(data: Path, tmp: Path, method: str):
    cfg = retrieve_cfg(tmp, data / "data", ["model=clip_tiny", f"method={method}", *SMALL_MODEL,
                                            "data.eval_batch_size=3"])  # batches cross the chunk boundaries
    split = load_splits(cfg, "test")["test"]
    broken = tmp / "broken.mp4"
    broken.write_bytes(b"not a video")
    paths = [broken if i in BROKEN else p for i, p in enumerate(split.video_paths)]
    return Encoder(cfg), replace(split, video_paths=paths)


@pytest.mark.parametrize("method", ["zeroshot", "xpool"])  # xpool: frame embeddings [n, T, D]
def test_each_chunk_equals_its_videos_encoded_alone(data, tmp_path, method):
    encoder, split = encoder_and_split(data, tmp_path, method)
    out = list(encoder.encode_readable_chunks(split, CHUNKS))
    assert len(out) == len(CHUNKS)
    for rows, (emb, bad) in zip(CHUNKS, out):
        assert set(bad) == BROKEN & set(rows) and all(bad.values())  # {video index: reason}
        readable = [i for i in rows if i not in BROKEN]
        alone = encoder.encode_videos(split, readable) if readable else None
        if alone is None:
            width = encoder.model.clip.config.projection_dim
            assert emb.shape == ((0, 4, width) if method == "xpool" else (0, width))
        else:
            assert emb.shape == alone.shape and torch.allclose(emb, alone, atol=1e-5)


def test_a_build_makes_one_loader_for_all_its_chunks(data, tmp_path, monkeypatch):
    encoder, split = encoder_and_split(data, tmp_path, "zeroshot")
    made, real = [], Encoder.video_loader
    monkeypatch.setattr(Encoder, "video_loader", lambda self, *a, **k: made.append(1) or real(self, *a, **k))
    chunked = build_gallery(encoder, split, tmp_path / "chunked.safetensors", chunk_videos=5, progress=False,
                            max_bad_fraction=0.5)
    assert len(made) == 1  # 4 chunks of 5 videos
    whole = build_gallery(encoder, split, tmp_path / "whole.safetensors", chunk_videos=1024, progress=False,
                          max_bad_fraction=0.5)
    assert chunked.video_ids == whole.video_ids == [split.video_ids[i] for i in range(16) if i not in BROKEN]
    assert torch.allclose(chunked.video_emb, whole.video_emb, atol=1e-5)
