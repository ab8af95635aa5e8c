"""Top-k search over a gallery of L2-normalised embeddings (inner product = cosine).

`TorchIndex` is exact for any gallery size: it scores the gallery in chunks and merges each
chunk's top-k, so memory stays O(queries x chunk) rather than O(queries x gallery).
`FaissIndex` wraps faiss-cpu: `flat` is exact (IndexFlatIP), `ivf` is approximate and faster on
very large galleries (it searches `nprobe` of `nlist` clusters), `ivfsq8` and `ivfpq` compress the
rows too (4x and 32x at D=512 with m=64), for galleries that do not fit in memory as float32.
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Callable, Iterable

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


FAISS_KINDS = ("flat", "ivf", "ivfsq8", "ivfpq", "factory")
# faiss's index_factory grammar ("OPQ64,IVF4096,PQ64x8,Refine(SQ8)"): letters, digits and , _ ( ) only.
FACTORY_CHARS = re.compile(r"[A-Za-z0-9_,()]+")
CLUSTER_TRAIN_ROWS = 64     # k-means rows per IVF cluster: faiss warns below 39; 64 builds 1M rows in seconds
CODEBOOK_TRAIN_ROWS = 64    # rows per PQ / SQ codebook entry (2**nbits entries per sub-quantizer)
ADD_CHUNK = 65536           # rows copied to float32 numpy and added at a time


class FaissIndex:
    """faiss-cpu inner-product index, chosen by `kind` (configs/index/faiss.yaml):

    - `flat`: exact (IndexFlatIP), 4*D bytes a row;
    - `ivf`: `nlist` k-means clusters, `nprobe` of them searched; float32 rows (approximate);
    - `ivfsq8`: IVF with rows stored as 8-bit scalars: D bytes a row;
    - `ivfpq`: IVF with product quantization: `m` codes of `nbits` bits a row (m*nbits/8 bytes);
    - `factory`: any faiss index_factory string (`factory`), e.g. "OPQ64,IVF4096,PQ64,Refine(SQ8)".

    Trained indexes learn from a uniform sample of the rows (CLUSTER_TRAIN_ROWS a cluster, and enough for
    the codebooks), and rows are added ADD_CHUNK at a time: `FaissIndex.from_chunks` builds one from
    blocks of rows (e.g. one gallery shard at a time) without ever holding the whole float32 gallery.
    A gallery too small to train a compressed index (fewer rows than its codebooks need) is kept exact."""

    def __init__(self, emb: torch.Tensor, kind: str = "flat", nlist: int = 1024, nprobe: int = 16, m: int = 64,
                 nbits: int = 8, factory: str = ""):
        emb = _check(emb)
        self._build(lambda: (emb[i:i + ADD_CHUNK] for i in range(0, emb.shape[0], ADD_CHUNK)),
                    kind, nlist, nprobe, m, nbits, factory)

    @classmethod
    def from_chunks(cls, chunks: Callable[[], Iterable[torch.Tensor]], **options) -> "FaissIndex":
        """Build from blocks of rows without holding them all: `chunks()` yields [n_i, D] tensors in gallery
        order and is called twice (once to draw the training sample, once to add the rows), so at most one
        block, the sample and the index are in memory at a time. `options`: as the constructor's."""
        self = cls.__new__(cls)
        self._build(chunks, **options)
        return self

    def _build(self, chunks, kind: str = "flat", nlist: int = 1024, nprobe: int = 16, m: int = 64, nbits: int = 8,
               factory: str = "") -> None:
        import faiss  # optional dependency: only index=faiss needs it

        check_faiss_options(kind, nlist, nprobe, m, nbits, factory)
        trained = kind != "flat"
        rows, dim, sample = sample_rows(chunks(), training_rows(kind, nlist, nbits, factory) if trained else 0)
        if kind in ("ivf", "ivfsq8", "ivfpq"):
            nlist = max(1, min(nlist, rows // 39))  # faiss wants >= 39 points per cluster
        spec = factory_string(kind, dim, nlist, m, nbits, factory)
        if trained and rows < min_rows(kind, nbits):
            log.info("index: %d rows are too few to train index.kind=%s; kept exact (flat)", rows, kind)
            spec, trained = "Flat", False
        try:
            self.index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            what = f"index.factory={factory!r}" if kind == "factory" else f"index.kind={kind} ({spec})"
            raise ConfigError(f"{what}: faiss cannot build it for {dim}-d rows "
                              f"({str(err).strip().splitlines()[-1]})") from None
        self.spec = spec
        if trained and not self.index.is_trained:
            try:
                self.index.train(sample)
            except RuntimeError as err:  # e.g. a factory string wanting more rows than the gallery has
                raise ConfigError(f"index.kind={kind} ({spec}) cannot be trained on {len(sample)} rows of this "
                                  f"gallery ({str(err).strip().splitlines()[-1]})") from None
        del sample
        for chunk in chunks():
            self.index.add(np.ascontiguousarray(_check(chunk).cpu().numpy()))
        if self.index.ntotal != rows:
            raise ValueError(f"the gallery's chunks gave {rows} rows, then {self.index.ntotal}: chunks() must "
                             "yield the same rows each time")
        self.set_nprobe(nprobe)

    def set_nprobe(self, nprobe: int) -> None:
        """Clusters searched per query (IVF kinds; no effect on flat)."""
        import faiss

        try:
            faiss.extract_index_ivf(self.index).nprobe = nprobe
        except RuntimeError:  # no inverted lists: nothing to probe
            pass

    def nbytes(self) -> int:
        """The index's size: bytes faiss writes for it (codes, ids, centroids, codebooks)."""
        import faiss

        with tempfile.TemporaryDirectory() as tmp:  # a file, not serialize_index: no second copy in memory
            faiss.write_index(self.index, str(Path(tmp) / "index"))
            return (Path(tmp) / "index").stat().st_size

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [Q, D] -> (scores [Q, k'], rows [Q, k']) best first, k' = min(k, N)."""
        k = min(k, len(self))
        scores, rows = self.index.search(np.ascontiguousarray(queries.float().cpu().numpy()), k)
        return torch.from_numpy(scores), torch.from_numpy(rows).long()


def check_faiss_options(kind: str, nlist: int, nprobe: int, m: int, nbits: int, factory: str) -> None:
    if kind not in FAISS_KINDS:
        raise ConfigError(f"index.kind={kind!r}: expected one of {', '.join(FAISS_KINDS)} (flat: exact; ivf, "
                          "ivfsq8, ivfpq: approximate, the last two compressed; factory: index.factory)")
    for key, value, low in (("nlist", nlist, 1), ("nprobe", nprobe, 1), ("m", m, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"index.{key}={value!r} must be an integer >= {low}")
    if not isinstance(nbits, int) or isinstance(nbits, bool) or not 4 <= nbits <= 12:
        raise ConfigError(f"index.nbits={nbits!r}: expected 4 to 12 bits per product-quantizer code (8 is usual)")
    if kind == "factory" and not (isinstance(factory, str) and FACTORY_CHARS.fullmatch(factory)):
        raise ConfigError(f"index.factory={factory!r}: give a faiss index_factory string such as "
                          "'IVF4096,PQ64x8' (letters, digits and , _ ( ) only)")


def training_rows(kind: str, nlist: int, nbits: int, factory: str = "") -> int:
    """How many rows to train on: enough for the k-means clusters and the codebooks."""
    if kind == "factory" and (clusters := re.search(r"IVF(\d+)", factory)):
        nlist = int(clusters[1])  # the factory string's own cluster count
    return max(CLUSTER_TRAIN_ROWS * nlist, CODEBOOK_TRAIN_ROWS * 2 ** nbits if kind in ("ivfpq", "factory") else 0)


def min_rows(kind: str, nbits: int) -> int:
    """Fewer rows than this cannot train the kind's codebooks (faiss: >= 39 rows per codebook entry)."""
    return 39 * 2 ** nbits if kind == "ivfpq" else 1


def factory_string(kind: str, dim: int, nlist: int, m: int, nbits: int, factory: str) -> str:
    if kind == "ivfpq" and dim % m:
        raise ConfigError(f"index.m={m} must divide the embedding size {dim} (the product quantizer splits each "
                          f"row into m parts): e.g. index.m={next(d for d in (64, 32, 16, 8, 4, 2, 1) if dim % d == 0)}")
    return {"flat": "Flat", "ivf": f"IVF{nlist},Flat", "ivfsq8": f"IVF{nlist},SQ8",
            "ivfpq": f"IVF{nlist},PQ{m}x{nbits}", "factory": factory}[kind]


def sample_rows(chunks: Iterable[torch.Tensor], size: int, seed: int = 0) -> tuple[int, int, np.ndarray]:
    """(rows, dim, a uniform random sample of `size` rows, in gallery order) in one pass over the chunks: each row
    gets a random key and the `size` smallest keys are kept, so memory stays O(size x D)."""
    gen = torch.Generator().manual_seed(seed)
    rows, dim, keys, kept = 0, None, torch.empty(0), None
    for chunk in chunks:
        chunk = _check(chunk)
        if dim is not None and chunk.shape[1] != dim:
            raise ValueError(f"a gallery chunk holds {chunk.shape[1]}-d rows, the first held {dim}-d")
        dim = chunk.shape[1]
        if size:
            keys = torch.cat([keys, torch.rand(chunk.shape[0], generator=gen)])
            kept = chunk.clone() if kept is None else torch.cat([kept, chunk])
            if len(keys) > size:
                pick = keys.topk(size, largest=False)[1].sort().values  # kept in gallery order
                keys, kept = keys[pick], kept[pick]
        rows += chunk.shape[0]
    if dim is None:
        raise ValueError("an index needs a non-empty [N, D] gallery, got no rows")
    sample = np.empty((0, dim), np.float32) if kept is None else kept.numpy()
    return rows, dim, np.ascontiguousarray(sample)
