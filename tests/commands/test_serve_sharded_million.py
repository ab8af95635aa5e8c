"""`retrieve.py action=serve` over a sharded gallery of a million rows with a compressed index
(index=faiss index.kind=ivfsq8, 8 bits a value): 8 shards and their manifest, rows drawn from a mixture of clusters
(64-d, the tiny model's width), among them the tiny model's embeddings of 16 captions at known rows;
the served search of each caption finds its row first. Prints the server's resident memory and the
HTTP latency per query. Slow: writing and loading the gallery and training the index take minutes."""
from __future__ import annotations

import json
import statistics
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.commands.test_serve import TINY, get, start_server, stop
from tests.helpers import cli
from vop.retrieval.gallery import Gallery
from vop.retrieval.gallery_shards import shard_name, shards_dir, write_manifest
from vop.retrieval.query_encoder import Encoder
from vop.tools.bench_retrieval import clustered

pytestmark = pytest.mark.slow
ROWS, SHARDS = 1_000_000, 8
INDEX = ["index=faiss", "index.kind=ivfsq8", "index.nlist=1000", "index.nprobe=16"]  # the kind docs/retrieval.md advises from ~1M rows


def million_row_gallery(tmp: Path) -> tuple[Path, list[str], list[int]]:
    """(manifest path, the captions, their rows): a small real gallery gives the encoder identity."""
    small = tmp / "small.safetensors"
    proc = cli("retrieve.py", "action=build", f"gallery={small}", "split=test", f"paths.data_dir={tmp / 'data'}", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    real = Gallery.load(small)
    captions = list(dict.fromkeys(real.captions))[:16]
    text_emb = Encoder(real.encoder_config(), ckpt=real.encoder.get("ckpt")).encode_texts(captions)  # [16, 64]
    video_emb = clustered(ROWS, text_emb.shape[1], 1000, seed=1)
    rows = [(61_803 * (i + 1) + 12_345) % ROWS for i in range(len(captions))]  # spread over the shards
    video_emb[rows] = text_emb
    ids = [f"v{r:07d}" for r in range(ROWS)]
    for i, r in enumerate(rows):
        ids[r] = f"target-{i}"
    path, step, shard_paths = tmp / "million.safetensors", ROWS // SHARDS, []
    for k in range(SHARDS):
        lo, hi = k * step, (k + 1) * step if k < SHARDS - 1 else ROWS
        mine = [i for i, r in enumerate(rows) if lo <= r < hi]
        shard = Gallery(video_emb[lo:hi].clone(), text_emb[mine].clone(), ids[lo:hi], [""] * (hi - lo),
                        [captions[i] for i in mine], [rows[i] - lo for i in mine], real.encoder, real.config)
        shard_paths.append(shard.save(shards_dir(path) / shard_name(k, SHARDS)))
    write_manifest(path, shard_paths)
    return path, captions, rows


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident now, peak) of a process, MiB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def test_server_answers_over_a_sharded_million_row_gallery_with_a_compressed_index(tmp_path):
    path, captions, rows = million_row_gallery(tmp_path)
    tic = time.perf_counter()
    proc, url = start_server(path, tmp_path / "data", *INDEX)
    startup = time.perf_counter() - tic
    try:
        status, _, body = get(url + "api/health")
        assert status == 200 and json.loads(body)["videos"] == ROWS
        latencies = []
        for i, caption in enumerate(captions):
            tic = time.perf_counter()
            status, _, body = get(url + "api/search?" + urllib.parse.urlencode({"q": caption, "k": 10}))
            latencies.append((time.perf_counter() - tic) * 1000)
            hits = json.loads(body)["hits"]
            assert status == 200 and len(hits) == 10
            assert hits[0]["id"] == f"target-{i}" and hits[0]["row"] == rows[i], (caption, hits[:3])
            assert hits[0]["truth"] and hits[0]["score"] > hits[1]["score"]
        resident, peak = rss_mib(proc.pid)
        print(f"\nserver over {ROWS:,} rows in {len(list(shards_dir(path).iterdir()))} shards, {' '.join(INDEX)}: "
              f"up in {startup:.0f} s; RSS {resident:.0f} MiB (peak {peak:.0f} MiB); HTTP search p50 "
              f"{statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms over {len(latencies)} queries")
    finally:
        if proc.poll() is None:
            stop(proc)
