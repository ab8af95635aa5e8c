"""Top-k search over a gallery of L2-normalised embeddings (inner product = cosine).

`TorchIndex` is exact for any gallery size: it scores the gallery in chunks and merges each
chunk's top-k, so memory stays O(queries x chunk) rather than O(queries x gallery).
`FaissIndex` wraps faiss-cpu: `flat` is exact (IndexFlatIP), `ivf` is approximate and faster on
very large galleries (it searches `nprobe` of `nlist` clusters).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from vop.errors import ConfigError

log = logging.getLogger(__name__)


def _check(emb: torch.Tensor) -> torch.Tensor:
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"an index needs a non-empty [N, D] gallery, got {tuple(emb.shape)}")
    return emb.float().contiguous()


INDEX_PRECISIONS = ("fp32", "fp16", "auto")  # index.precision (trainer.precision: vop/config/device.py)
AUTO_FP16_ROWS = 50_000  # precision=auto: below this many rows fp32 is fast enough
PROBE_QUERIES = 64       # precision=auto: gallery rows whose top-k fp16 must keep


class TorchIndex:
    """Exact top-k by chunked matrix products.

    `precision=fp16` keeps the gallery in half precision: half the memory, and on a CPU about half
    the time per query (a search reads the whole gallery). `auto` takes fp16 for galleries of
    AUTO_FP16_ROWS rows or more when it keeps the top-10 of PROBE_QUERIES of the gallery's own rows
    (as queries, with noise) identical to fp32's, and says which it chose."""

    def __init__(self, emb: torch.Tensor, chunk_size: int = 65536, precision: str = "fp32"):
        if chunk_size < 1:
            raise ConfigError(f"index.chunk_size must be >= 1, got {chunk_size}")
        if precision not in INDEX_PRECISIONS:
            raise ConfigError(f"index.precision={precision} is not allowed: expected one of "
                              f"{', '.join(INDEX_PRECISIONS)}")
        self.emb, self.chunk_size = _check(emb), chunk_size  # [N, D]
        if precision == "auto":
            precision = "fp16" if len(self) >= AUTO_FP16_ROWS and self.fp16_keeps_top_k() else "fp32"
            log.info("index: %d rows kept in %s (index.precision=auto)", len(self), precision)
        self.precision = precision
        if precision == "fp16":
            self.emb = self.emb.half()

    def fp16_keeps_top_k(self, k: int = 10) -> bool:
        """Whether half precision keeps the exact top-k (as sets) for probe queries near gallery rows."""
        gen = torch.Generator().manual_seed(0)
        rows = torch.randperm(len(self), generator=gen)[:PROBE_QUERIES]
        probe = self.emb[rows] + 0.05 * torch.randn(len(rows), self.emb.shape[1], generator=gen)
        probe = torch.nn.functional.normalize(probe, dim=1)
        exact = self._search(self.emb, probe, k)[1]
        half = self._search(self.emb.half(), probe, k)[1]
        return all(set(a.tolist()) == set(b.tolist()) for a, b in zip(exact, half))

    def __len__(self) -> int:
        return self.emb.shape[0]

    @torch.inference_mode()
    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [Q, D] -> (scores [Q, k'], rows [Q, k']) best first, k' = min(k, N); scores in float32."""
        return self._search(self.emb, queries, k)

    def _search(self, emb: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, emb.shape[0])
        queries = queries.to(device=emb.device, dtype=emb.dtype)
        best_s = torch.full((queries.shape[0], 0), float("-inf"), device=queries.device)
        best_i = torch.zeros((queries.shape[0], 0), dtype=torch.long, device=queries.device)
        for start in range(0, emb.shape[0], self.chunk_size):
            sims = (queries @ emb[start:start + self.chunk_size].T).float()  # [Q, c]
            s, i = sims.topk(min(k, sims.shape[1]), dim=1)
            # Merge with the running best: top-k of (k old + k new) candidates.
            best_s, pos = torch.cat([best_s, s], 1).topk(min(k, best_s.shape[1] + s.shape[1]), dim=1)
            best_i = torch.cat([best_i, i + start], 1).gather(1, pos)
        return best_s, best_i


class FaissIndex:
    """faiss-cpu inner-product index: `kind=flat` exact, `kind=ivf` clustered (approximate)."""

    def __init__(self, emb: torch.Tensor, kind: str = "flat", nlist: int = 1024, nprobe: int = 16):
        import faiss  # optional dependency: only index=faiss needs it

        data = _check(emb).cpu().numpy()  # [N, D] float32
        dim = data.shape[1]
        if kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif kind == "ivf":
            nlist = max(1, min(nlist, data.shape[0] // 39))  # faiss wants >= 39 points per cluster
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            # k-means on a sample: 64 points per cluster is plenty and keeps building a 1M index in seconds.
            sample = np.random.default_rng(0).permutation(data.shape[0])[:64 * nlist]
            self.index.train(data[np.sort(sample)])
            self.index.nprobe = nprobe
        else:
            raise ConfigError(f"index.kind={kind!r}: expected 'flat' (exact) or 'ivf' (approximate)")
        self.index.add(data)

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [Q, D] -> (scores [Q, k'], rows [Q, k']) best first, k' = min(k, N)."""
        k = min(k, len(self))
        scores, rows = self.index.search(np.ascontiguousarray(queries.float().cpu().numpy()), k)
        return torch.from_numpy(scores), torch.from_numpy(rows).long()
