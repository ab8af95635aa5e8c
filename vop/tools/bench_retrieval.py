"""Query latency and memory of the retrieval indexes on random 512-d galleries, side by side.

    python scripts/bench_retrieval.py [--sizes 10000 100000 1000000] [--queries 64] [--dim 512]

For each gallery size: torch chunked exact top-k, faiss IndexFlatIP (exact) and faiss IVF
(approximate; recall@k against the exact result is printed, and random vectors have no cluster
structure, so this is IVF's worst case). Latency: one query alone and a batch of --queries,
median of --repeats. Memory: the index's resident growth (RSS after build minus before) and the
peak RSS growth during a batched search (Linux VmHWM, reset before each measurement).
"""
from __future__ import annotations

import argparse
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


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def random_gallery(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """[n, dim] unit vectors, generated in blocks so the peak stays near the gallery's own size."""
    out = torch.empty(n, dim)
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, n, 65536):
        block = torch.randn(min(65536, n - start), dim, generator=gen)
        out[start:start + block.shape[0]] = torch.nn.functional.normalize(block, dim=1)
    return out


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append((time.perf_counter() - tic) * 1000)
    return statistics.median(times)


def bench(name: str, build, queries: torch.Tensor, k: int, repeats: int, exact_rows: torch.Tensor | None):
    before = rss_mib()
    tic = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - tic
    index_mib = rss_mib() - before
    one = median_ms(lambda: index.search(queries[:1], k), repeats)
    reset_peak()
    base = rss_mib()
    batch = median_ms(lambda: index.search(queries, k), repeats)
    peak = rss_mib("VmHWM") - base
    rows = index.search(queries, k)[1]
    recall = 1.0 if exact_rows is None else \
        sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(rows, exact_rows)) / exact_rows.numel()
    print(f"  {name:<15} build {build_s:7.2f} s | index +{index_mib:7.0f} MiB | 1 query {one:8.2f} ms | "
          f"{queries.shape[0]} queries {batch:9.2f} ms ({batch / queries.shape[0]:7.3f} ms/q) | "
          f"search peak +{peak:6.0f} MiB | recall@{k} {recall:.3f}", flush=True)
    del index
    return rows, batch


def main() -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=65536, help="TorchIndex chunk size")
    args = parser.parse_args()
    import faiss

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), faiss {faiss.__version__} "
          f"({faiss.omp_get_max_threads()} threads); dim {args.dim}, k {args.k}, median of {args.repeats}")
    for n in args.sizes:
        gallery, queries = random_gallery(n, args.dim), random_gallery(args.queries, args.dim, seed=1)
        print(f"gallery {n:,} x {args.dim} float32 = {gallery.numel() * 4 / 2**20:,.0f} MiB")
        exact, torch_ms = bench("torch chunked", lambda: TorchIndex(gallery, args.chunk), queries, args.k,
                                args.repeats, None)
        _, flat_ms = bench("faiss flat", lambda: FaissIndex(gallery, "flat"), queries, args.k, args.repeats, exact)
        nlist = max(1, int(n ** 0.5))
        _, ivf_ms = bench(f"faiss ivf{nlist}", lambda: FaissIndex(gallery, "ivf", nlist=nlist, nprobe=16),
                          queries, args.k, args.repeats, exact)
        print(f"  batched latency ratio vs torch: faiss flat {flat_ms / torch_ms:.2f}x, ivf {ivf_ms / torch_ms:.2f}x")
        del gallery
