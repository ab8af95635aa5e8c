"""Memory, latency, recall@10 and build time of the retrieval indexes, side by side in one run, on
clustered 512-d galleries.

    python scripts/bench_retrieval.py [--sizes 100000 1000000] [--dim 512] [--clusters 1000]
        [--nprobe 16] [--m 64] [--nbits 8] [--factory "OPQ64,IVF4096,PQ64"]

Each gallery is drawn from a mixture of `--clusters` gaussian clusters of unequal size (within-cluster
cosine about 0.5, the spread of real CLIP embeddings rather than uniform random vectors), rows
L2-normalised; `--queries` queries come from the same mixture. For exact fp32 (TorchIndex), exact
fp16 (TorchIndex precision=fp16), faiss flat (exact), faiss IVF (float32 rows), IVF-SQ8 (8-bit rows)
and IVF-PQ (`--m` codes of `--nbits` bits a row), and any `--factory` string:
- build: seconds to build the index from the float32 gallery (training included);
- MiB/1M rows: the index's own bytes (tensor bytes; faiss: the bytes faiss writes for it: codes, ids,
  centroids, codebooks) per million rows;
- RSS +MiB: the process's resident growth while building it (training copies included);
- 1 query ms: one query alone (median over 16 queries, best of --repeats each);
- ms/query batched: --queries queries in one call, per query;
- recall@10: the share of exact fp32's top-k the index returns (k = --k).
The IVF indexes use nlist = 4 sqrt(rows) (--nlist to fix it) and --nprobe.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

from vop.errors import ArgumentParser
from vop.retrieval.index import FaissIndex, TorchIndex


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clustered(n: int, dim: int, clusters: int, seed: int) -> torch.Tensor:
    """[n, dim] unit rows from a mixture of `clusters` gaussian centres with unequal (log-normal) weights;
    generated in blocks so the peak stays near the gallery's own size."""
    gen = torch.Generator().manual_seed(0)  # the same mixture for the gallery and its queries
    centres = torch.nn.functional.normalize(torch.randn(clusters, dim, generator=gen), dim=1)
    weights = torch.exp(torch.randn(clusters, generator=gen))
    gen.manual_seed(seed)
    out = torch.empty(n, dim)
    for start in range(0, n, 65536):
        m = min(65536, n - start)
        which = torch.multinomial(weights, m, replacement=True, generator=gen)
        noise = torch.randn(m, dim, generator=gen) / math.sqrt(dim)  # |noise| ~ 1: cosine to the centre ~0.7
        out[start:start + m] = torch.nn.functional.normalize(centres[which] + noise, dim=1)
    return out


def single_query_ms(index, queries: torch.Tensor, k: int, repeats: int = 3) -> float:
    """Median over 16 queries of the best of `repeats` single-query searches, ms."""
    index.search(queries[:1], k)  # warm
    times = []
    for q in queries[:16]:
        best = math.inf
        for _ in range(repeats):
            tic = time.perf_counter()
            index.search(q[None], k)
            best = min(best, (time.perf_counter() - tic) * 1000)
        times.append(best)
    return statistics.median(times)


def recall(rows: torch.Tensor, exact: torch.Tensor) -> float:
    return sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(rows, exact)) / exact.numel()


def index_bytes(index) -> int:
    return index.emb.numel() * index.emb.element_size() if isinstance(index, TorchIndex) else index.nbytes()


def bench(name: str, build, queries: torch.Tensor, k: int, repeats: int, truth: torch.Tensor | None):
    """One table row; returns (exact rows, figures) so the first row's rows are the truth."""
    before = rss_mib()
    tic = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - tic
    rss = rss_mib() - before
    name = f"{name} {index.spec}" if isinstance(index, FaissIndex) else name
    per_million = index_bytes(index) / len(index) * 1e6 / 2 ** 20
    one = single_query_ms(index, queries, k, repeats)
    tic = time.perf_counter()
    rows = index.search(queries, k)[1]
    batch = (time.perf_counter() - tic) * 1000 / queries.shape[0]
    got = 1.0 if truth is None else recall(rows, truth)
    print(f"  {name:<36}{build_s:9.2f}{per_million:13.1f}{rss:10.0f}{one:12.3f}{batch:12.3f}{got:11.3f}", flush=True)
    del index
    return rows, {"mib": per_million, "one": one, "recall": got}


def main() -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", "--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="gallery rows")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nlist", type=int, default=0, help="IVF clusters (0: 4 sqrt(rows))")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--m", type=int, default=64, help="IVF-PQ codes a row")
    parser.add_argument("--nbits", type=int, default=8, help="IVF-PQ bits a code")
    parser.add_argument("--factory", nargs="*", default=[], help="more faiss index_factory strings to measure")
    args = parser.parse_args()
    import faiss

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), faiss {faiss.__version__} "
          f"({faiss.omp_get_max_threads()} threads); dim {args.dim}, k {args.k}, {args.queries} queries")
    for n in args.sizes:
        gallery = clustered(n, args.dim, args.clusters, seed=1)
        queries = clustered(args.queries, args.dim, args.clusters, seed=2)
        nlist = args.nlist or int(4 * math.sqrt(n))
        print(f"\ngallery {n:,} x {args.dim} float32 = {gallery.numel() * 4 / 2**20:,.0f} MiB, {args.clusters} clusters; "
              f"nlist {nlist}, nprobe {args.nprobe}")
        print(f"  {'index':<36}{'build s':>9}{'MiB/1M rows':>13}{'RSS +MiB':>10}{'1 query ms':>12}"
              f"{'ms/query':>12}{'recall@' + str(args.k):>11}")
        ivf = dict(nlist=nlist, nprobe=args.nprobe)
        builds = [("exact fp32 (torch)", lambda: TorchIndex(gallery)),
                  ("exact fp16 (torch)", lambda: TorchIndex(gallery, precision="fp16")),
                  ("faiss flat", lambda: FaissIndex(gallery, "flat")),
                  ("faiss ivf", lambda: FaissIndex(gallery, "ivf", **ivf)),
                  ("faiss ivfsq8", lambda: FaissIndex(gallery, "ivfsq8", **ivf)),
                  ("faiss ivfpq", lambda: FaissIndex(gallery, "ivfpq", m=args.m, nbits=args.nbits, **ivf)),
                  *(("faiss factory", lambda f=f: FaissIndex(gallery, "factory", factory=f, nprobe=args.nprobe))
                    for f in args.factory)]
        truth, figures = None, []
        for name, build in builds:
            rows, row = bench(name, build, queries, args.k, args.repeats, truth)
            truth = rows if truth is None else truth
            figures.append((name.removeprefix("faiss ").split(" (")[0].removeprefix("exact "), row))
        base = figures[0][1]
        print("  vs exact fp32: " + ", ".join(f"{name} {base['mib'] / row['mib']:.1f}x smaller, "
                                              f"{base['one'] / row['one']:.1f}x faster" for name, row in figures[1:]))
        del gallery
