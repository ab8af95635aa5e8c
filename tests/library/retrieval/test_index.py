"""Top-k indexes: chunked torch search equals brute force; faiss equals torch."""
import logging
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
