"""Top-k indexes: chunked torch search equals brute force; faiss equals torch."""
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from tests.helpers import CONFIG_DIR, compose_cfg

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
