"""Top-k search over a gallery of L2-normalised embeddings (inner product = cosine).

`TorchIndex` is exact for any gallery size: it scores the gallery in chunks and merges each
chunk's top-k, so memory stays O(queries x chunk) rather than O(queries x gallery).
`FaissIndex` wraps faiss-cpu: `flat` is exact (IndexFlatIP), `ivf` is approximate and faster on
very large galleries (it searches `nprobe` of `nlist` clusters).
"""
from __future__ import annotations

import numpy as np
import torch

from vop.errors import ConfigError


def _check(emb: torch.Tensor) -> torch.Tensor:
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"an index needs a non-empty [N, D] gallery, got {tuple(emb.shape)}")
    return emb.float().contiguous()


class TorchIndex:
    """Exact top-k by chunked matrix products."""

    def __init__(self, emb: torch.Tensor, chunk_size: int = 65536):
        if chunk_size < 1:
            raise ConfigError(f"index.chunk_size must be >= 1, got {chunk_size}")
        self.emb, self.chunk_size = _check(emb), chunk_size  # [N, D]

    def __len__(self) -> int:
        return self.emb.shape[0]

    @torch.inference_mode()
    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [Q, D] -> (scores [Q, k'], rows [Q, k']) best first, k' = min(k, N)."""
        k = min(k, len(self))
        queries = queries.float().to(self.emb.device)
        best_s = torch.full((queries.shape[0], 0), float("-inf"), device=queries.device)
        best_i = torch.zeros((queries.shape[0], 0), dtype=torch.long, device=queries.device)
        for start in range(0, len(self), self.chunk_size):
            sims = queries @ self.emb[start:start + self.chunk_size].T  # [Q, c]
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
