"""Top-k indexes: chunked torch search equals brute force; faiss equals torch."""
import logging
import re
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from tests.helpers import CONFIG_DIR, compose_cfg

import vop.retrieval.index as index_module
from vop.errors import ConfigError
from vop.retrieval.index import FaissIndex, TorchIndex


def random_unit(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(x, dim=1)


@pytest.mark.parametrize("chunk", [1, 7, 333, 1000, 5000])
def test_chunked_topk_equals_brute_force(chunk):
    gallery, queries = random_unit(1000, 32, 0), random_unit(20, 32, 1)
    scores, rows = TorchIndex(gallery, chunk_size=chunk).search(queries, 10)
    ref_scores, ref_rows = (queries @ gallery.T).topk(10, dim=1)
    assert torch.equal(rows, ref_rows)
    assert torch.allclose(scores, ref_scores, atol=1e-6)


def test_topk_larger_than_gallery_returns_the_whole_gallery():
    gallery = random_unit(5, 8, 2)
    scores, rows = TorchIndex(gallery, chunk_size=2).search(random_unit(3, 8, 3), 10)
    assert rows.shape == (3, 5) and sorted(rows[0].tolist()) == list(range(5))
    assert torch.all(scores[:, :-1] >= scores[:, 1:])


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_faiss_equals_torch_topk(kind):
    pytest.importorskip("faiss")
    gallery, queries = random_unit(5000, 64, 4), random_unit(50, 64, 5)
    # nprobe = nlist: the IVF index visits every cluster, so it must be exact as well.
    index = FaissIndex(gallery, kind=kind, nlist=16, nprobe=16)
    scores, rows = index.search(queries, 10)
    ref_scores, ref_rows = TorchIndex(gallery, chunk_size=999).search(queries, 10)
    assert torch.equal(rows, ref_rows)
    assert torch.allclose(scores, ref_scores, atol=1e-5)


def clustered_unit(n: int, d: int, seed: int, clusters: int = 20) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(clusters, d, generator=gen), dim=1)
    gen.manual_seed(seed)
    rows = centres[torch.randint(clusters, (n,), generator=gen)] + 0.5 * torch.randn(n, d, generator=gen) / d ** 0.5
    return torch.nn.functional.normalize(rows, dim=1)


def recall(rows: torch.Tensor, exact: torch.Tensor) -> float:
    return sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(rows, exact)) / exact.numel()


@pytest.mark.parametrize("kind, options, min_recall, max_bytes_per_row",
                         [("ivfsq8", {}, 0.9, 32 + 8 + 4), ("ivfpq", {"m": 16, "nbits": 4}, 0.2, 8 + 8 + 4)])
def test_compressed_indexes_store_fewer_bytes_and_find_most_exact_neighbours(kind, options, min_recall,
                                                                             max_bytes_per_row):
    """SQ8: a byte a value; PQ 16x4: 8 bytes a row (plus an 8-byte id and the centroids and codebooks, over
    3000 rows); every cluster probed, so what recall misses is the compression's."""
    pytest.importorskip("faiss")
    gallery, queries = clustered_unit(3000, 32, 0), clustered_unit(40, 32, 1)
    exact_scores, exact = TorchIndex(gallery).search(queries, 10)
    index = FaissIndex(gallery, kind=kind, nlist=8, nprobe=8, **options)
    assert index.spec.startswith("IVF8,") and len(index) == 3000
    assert index.nbytes() / len(index) < max_bytes_per_row < 32 * 4  # float32: 128 bytes a row
    scores, rows = index.search(queries, 10)
    assert min_recall <= recall(rows, exact) < 1 or kind == "ivfsq8"
    assert (scores[:, 0] - exact_scores[:, 0]).abs().max() < 0.1  # approximate scores, on the cosine scale
    own = index.search(gallery[:40], 10)[1]
    assert sum(i in r.tolist() for i, r in enumerate(own)) >= 36  # a gallery row finds itself


def test_an_index_built_chunk_by_chunk_equals_the_one_built_from_the_whole_gallery():
    """from_chunks reads the blocks twice (a training sample, then the rows), never the whole gallery."""
    pytest.importorskip("faiss")
    gallery, queries = clustered_unit(2500, 32, 2), clustered_unit(20, 32, 3)
    calls, largest = [], []

    def chunks():
        calls.append(1)
        for start in range(0, len(gallery), 700):  # 4 blocks, the last one short
            block = gallery[start:start + 700].clone()
            largest.append(len(block))
            yield block

    options = dict(kind="ivfpq", nlist=4, nprobe=2, m=8, nbits=4)
    whole, chunked = FaissIndex(gallery, **options), FaissIndex.from_chunks(chunks, **options)
    assert len(calls) == 2 and max(largest) == 700 and len(chunked) == 2500
    for got, want in zip(chunked.search(queries, 10), whole.search(queries, 10)):
        assert torch.equal(got, want)
    assert not torch.equal(chunked.search(queries, 10)[1], TorchIndex(gallery).search(queries, 10)[1])  # approximate
    growing = iter([gallery[:1300], gallery[:1400]])  # a gallery that changed between the two passes
    with pytest.raises(ValueError, match=r"gave 1300 rows, then 1400: chunks\(\) must yield the same rows each time"):
        FaissIndex.from_chunks(lambda: [next(growing)], kind="flat")


def test_sample_rows_is_uniform_and_kept_in_gallery_order():
    rows = torch.arange(10_000, dtype=torch.float32)[:, None].repeat(1, 2)  # row i holds i
    n, dim, sample = index_module.sample_rows(iter(rows.split(999)), 1000)
    assert (n, dim, sample.shape) == (10_000, 2, (1000, 2))
    picked = sample[:, 0]
    assert (picked[1:] > picked[:-1]).all()  # distinct rows, in order
    assert 3500 < picked.mean() < 6500 and (picked < 5000).sum() in range(400, 600)  # spread over the gallery


def test_a_gallery_too_small_for_the_codebooks_is_kept_exact(caplog):
    pytest.importorskip("faiss")
    gallery, queries = random_unit(300, 16, 0), random_unit(5, 16, 1)
    with caplog.at_level(logging.INFO, logger="vop.retrieval.index"):
        index = FaissIndex(gallery, kind="ivfpq", m=4, nbits=8)  # 256 codes need 39 x 256 rows
    assert index.spec == "Flat" and "300 rows are too few to train index.kind=ivfpq" in caplog.text
    assert torch.equal(index.search(queries, 10)[1], TorchIndex(gallery).search(queries, 10)[1])


@pytest.mark.parametrize("override, message", [
    ("index.kind=hnsw", "index.kind='hnsw': expected one of flat, ivf, ivfsq8, ivfpq, factory"),
    ("index.m=5", "index.m=5 must divide the embedding size 8"),
    ("index.nbits=16", "index.nbits=16: expected 4 to 12 bits"),
    ("index.nprobe=0", "index.nprobe=0 must be an integer >= 1"),
    ("index.factory='IVF4,PQ2;import os'", "index.factory='IVF4,PQ2;import os': give a faiss index_factory string"),
    ("index.factory='IVF4,Nonsense'", "index.factory='IVF4,Nonsense': faiss cannot build it for 8-d rows"),
    ("index.factory='IVF4096,Flat'", "index.kind=factory (IVF4096,Flat) cannot be trained on 1000 rows"),
])
def test_bad_faiss_options_fail_naming_the_key(override, message, tmp_path):
    pytest.importorskip("faiss")
    kind = ["index.kind=factory"] if override.startswith("index.factory") else ["index.kind=ivfpq", "index.m=4"]
    cfg = compose_cfg("retrieve", ["index=faiss", *kind, override], tmp_path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        instantiate(cfg.index)(random_unit(1000, 8, 0))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="index.kind"):
        FaissIndex(random_unit(10, 4, 0), kind="hnsw")
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        TorchIndex(torch.zeros(0, 4))


@pytest.mark.parametrize("option", sorted(p.stem for p in (Path(CONFIG_DIR) / "index").glob("*.yaml")))
def test_every_index_config_builds_and_searches(option, tmp_path):
    pytest.importorskip("faiss")
    cfg = compose_cfg("retrieve", [f"index={option}"], tmp_path)
    index = instantiate(cfg.index)(random_unit(100, 8, 0))
    assert index.search(random_unit(2, 8, 1), 3)[1].shape == (2, 3)


def test_fp16_keeps_the_exact_top_k_on_clustered_embeddings_and_auto_says_so(caplog, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(50, 64, generator=gen), dim=1)
    gallery = torch.nn.functional.normalize(centres.repeat(40, 1) + 0.3 * torch.randn(2000, 64, generator=gen), dim=1)
    queries = torch.nn.functional.normalize(centres[:20] + 0.3 * torch.randn(20, 64, generator=gen), dim=1)
    exact = TorchIndex(gallery).search(queries, 10)
    half = TorchIndex(gallery, precision="fp16")
    assert half.emb.dtype == torch.float16
    scores, rows = half.search(queries, 10)
    assert scores.dtype == torch.float32
    assert [set(r.tolist()) for r in rows] == [set(r.tolist()) for r in exact[1]]
    torch.testing.assert_close(scores, exact[0], atol=2e-3, rtol=0)
    assert half.fp16_keeps_top_k()
    with caplog.at_level(logging.INFO, logger="vop.retrieval.index"):
        small = TorchIndex(gallery, precision="auto")
        monkeypatch.setattr(index_module, "AUTO_FP16_ROWS", 1000)
        large = TorchIndex(gallery, precision="auto")
    assert small.precision == "fp32" and large.precision == "fp16"
    assert "2000 rows kept in fp16 (index.precision=auto)" in caplog.text
    with pytest.raises(ConfigError, match="index.precision=fp8 is not allowed"):
        TorchIndex(gallery, precision="fp8")


def test_an_index_over_a_sharded_gallery_reads_one_shard_at_a_time(tmp_path):
    """FaissIndex.from_chunks over shard_video_chunks equals the index of the loaded (concatenated) gallery."""
    pytest.importorskip("faiss")
    from vop.retrieval.gallery import Gallery
    from vop.retrieval.gallery_shards import load_gallery, shard_name, shard_video_chunks, shards_dir, write_manifest

    path, encoder = tmp_path / "g.safetensors", {"model": "clip_tiny", "method": "zeroshot", "fingerprint": "0" * 16}
    shards = [Gallery(clustered_unit(n, 16, seed), torch.zeros(0, 16), [f"s{seed}v{i}" for i in range(n)], [""] * n,
                      [], [], encoder, {"model": {}}).save(shards_dir(path) / shard_name(seed, 3))
              for seed, n in enumerate([900, 300, 1100])]
    write_manifest(path, shards)
    options, queries = dict(kind="ivfsq8", nlist=8, nprobe=3), clustered_unit(10, 16, 9)
    chunked = FaissIndex.from_chunks(lambda: shard_video_chunks(path), **options)
    whole = FaissIndex(load_gallery(path).video_emb, **options)
    assert len(chunked) == 2300
    for got, want in zip(chunked.search(queries, 10), whole.search(queries, 10)):
        assert torch.equal(got, want)
