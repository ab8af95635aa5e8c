"""Search latency, side by side in one run: the served page's API against the in-process pipeline,
and exact fp32, exact fp16 and IVF search on large galleries of clustered embeddings.

    python scripts/bench_serve.py [--gallery <file>] [--requests 64] [--sizes 100000 1000000]

1. A real small gallery (default: the tiny model's gallery of the synthetic test split, built under
   data/bench_serve/ on first use): text queries (its captions, top-10) through RetrievalPipeline
   in this process, then through `retrieve.py action=serve` over HTTP with 1 client and with 8
   concurrent clients; p50 / p95 per request, and the server's overhead (HTTP p50 - in-process p50).
2. Galleries of 100k and 1M 512-d rows drawn from a mixture of clusters (unequal sizes, within-cluster
   cosine about 0.5, the spread of real CLIP embeddings rather than uniform random vectors), with
   queries from the same mixture: one query's median latency and recall@10 against exact fp32, for
   exact fp32 (TorchIndex), exact fp16 (TorchIndex precision=fp16) and faiss IVF at the smallest
   nprobe that reaches recall@10 0.95.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from vop import ROOT
from vop.errors import ArgumentParser
from vop.tools.bench_retrieval import clustered, single_query_ms
from vop.retrieval.index import FaissIndex, TorchIndex
from vop.retrieval.pipeline import RetrievalPipeline

TINY = ["model=clip_tiny", "method=zeroshot", "data=synthetic", "trainer.progress=false"]
URL_LINE = re.compile(r"at (http://127\.0\.0\.1:\d+/)")


def percentiles(ms: list[float]) -> tuple[float, float]:
    ordered = sorted(ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def default_gallery() -> Path:
    path = ROOT / "data" / "bench_serve" / "gallery.safetensors"
    if not path.is_file():
        print(f"building {path} (the tiny model on the synthetic test split) ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "retrieve.py"), "action=build", f"gallery={path}", "split=test",
                        *TINY], check=True, cwd=ROOT, capture_output=True)
    return path


def start_server(gallery: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "retrieve.py"), "action=serve", f"gallery={gallery}",
                             "serve.port=0", *TINY], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if match := URL_LINE.search(line):
            return proc, match.group(1)
    raise RuntimeError("the server did not start")


def timed_get(url: str) -> float:
    tic = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        json.loads(response.read())
    return (time.perf_counter() - tic) * 1000


def bench_server(gallery: Path, requests: int) -> None:
    pipeline = RetrievalPipeline.from_gallery(gallery)
    captions = pipeline.gallery.captions
    queries = [captions[i % len(captions)] for i in range(requests)]
    for q in queries[:4]:
        pipeline(q, topk=10)  # warm
    local = []
    for q in queries:
        tic = time.perf_counter()
        pipeline(q, topk=10)
        local.append((time.perf_counter() - tic) * 1000)
    proc, url = start_server(gallery)
    try:
        urls = [url + "api/search?" + urllib.parse.urlencode({"q": q, "k": 10}) for q in queries]
        for u in urls[:4]:
            timed_get(u)
        one = [timed_get(u) for u in urls]
        with ThreadPoolExecutor(8) as pool:
            tic = time.perf_counter()
            eight = list(pool.map(timed_get, urls))
            wall = time.perf_counter() - tic
    finally:
        proc.terminate()
        proc.wait()
    rows = [("in-process pipeline", local), ("HTTP, 1 client", one), ("HTTP, 8 clients at once", eight)]
    print(f"\n{len(pipeline.gallery.video_ids)}-video gallery {gallery}, {requests} text queries, top-10:")
    print(f"  {'':<26}{'p50 ms':>9}{'p95 ms':>9}")
    for name, ms in rows:
        p50, p95 = percentiles(ms)
        print(f"  {name:<26}{p50:9.2f}{p95:9.2f}")
    print(f"  server overhead (HTTP p50 - in-process p50): {percentiles(one)[0] - percentiles(local)[0]:.2f} ms; "
          f"8 clients: {requests / wall:.1f} queries/s")


def recall(rows: torch.Tensor, exact: torch.Tensor) -> float:
    return sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(rows, exact)) / exact.numel()


def bench_large(n: int, dim: int, clusters: int, k: int = 10) -> None:
    gallery, queries = clustered(n, dim, clusters, seed=1), clustered(64, dim, clusters, seed=2)
    print(f"\n{n:,} x {dim} clustered gallery ({clusters} clusters), 64 queries from the mixture, top-{k}:")
    print(f"  {'':<34}{'1 query ms':>11}{'recall@10':>11}{'build s':>9}")
    exact = TorchIndex(gallery)
    truth = exact.search(queries, k)[1]
    print(f"  {'exact fp32 (TorchIndex)':<34}{single_query_ms(exact, queries, k):11.2f}{1.0:11.3f}{0.0:9.1f}", flush=True)
    del exact
    tic = time.perf_counter()
    half = TorchIndex(gallery, precision="fp16")
    build = time.perf_counter() - tic
    print(f"  {'exact fp16 (precision=fp16)':<34}{single_query_ms(half, queries, k):11.2f}"
          f"{recall(half.search(queries, k)[1], truth):11.3f}{build:9.1f}", flush=True)
    del half
    nlist = int(4 * math.sqrt(n))
    tic = time.perf_counter()
    ivf = FaissIndex(gallery, kind="ivf", nlist=nlist)
    build = time.perf_counter() - tic
    for nprobe in (1, 2, 4, 8, 16, 32, 64, 128):
        ivf.index.nprobe = nprobe
        got = recall(ivf.search(queries, k)[1], truth)
        if got >= 0.95 or nprobe == 128:
            break
    print(f"  {f'faiss IVF nlist {nlist} nprobe {nprobe}':<34}{single_query_ms(ivf, queries, k):11.2f}{got:11.3f}"
          f"{build:9.1f}", flush=True)


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=Path, help="a gallery file (default: the tiny model's synthetic test gallery)")
    parser.add_argument("--requests", type=int, default=64, help="text queries per measurement")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="large gallery rows")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    with torch.no_grad():  # not set_grad_enabled(False): the caller's autograd state is left as it was
        bench_server(args.gallery or default_gallery(), args.requests)
        for n in args.sizes:
            bench_large(n, args.dim, args.clusters)
