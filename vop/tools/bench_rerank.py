"""Two-stage search of a text-conditioned pooling (method=xpool) against the exhaustive ranking.

    python scripts/bench_rerank.py [--ks 10 50 100 200] [--videos 1000] [--frames 12] [--dim 512] [--queries 50]
    python scripts/bench_rerank.py --gallery galleries/xpool.safetensors [--ks ...] [--queries 200]

A caption's score for a video comes from the caption pooling that video's frames, so an exact
search pools every video for every query. The two-stage search (vop/retrieval/pipeline.py,
`two_stage_topk`, the code retrieve.py runs) shortlists the K videos whose mean-pooled embedding
is closest and pools only those. Both use the gallery's keys and values computed once (as the
pipeline does when it loads a gallery), so a query pays only for its own attention. For each K, side by side in one run: recall@10 (the share of
queries whose own video is in the top 10) of the two-stage and of the exhaustive ranking, how much
of the exhaustive top 10 the two-stage top 10 keeps, and the median time per query (one query at a
time, as retrieve.py and the server search).

Without --gallery: synthetic embeddings (each video a centre plus per-frame variation; each
caption one frame of its video plus `--noise` times a random unit vector, so pooling by the caption
matters) and a pooling head in
X-Pool's initial state (identity projections), seeded; with --gallery: a gallery built by
retrieve.py from an xpool run, its captions as queries and its encoder's trained head.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from vop.errors import ArgumentParser
from vop.methods.xpool import XPoolHooks
from vop.models.clip import mean_pool
from vop.retrieval.index import TorchIndex
from vop.retrieval.pipeline import two_stage_topk

TOP = 10  # recall@10 and the top-10 agreement


def synthetic(videos: int, frames: int, dim: int, queries: int, seed: int = 0, noise_scale: float = 5.0):
    """(frames [N, T, D], captions [Q, D], their videos [Q], the head) of a seeded synthetic gallery."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(videos, 1, dim, generator=gen)
    frame_emb = F.normalize(centres + 1.5 * torch.randn(videos, frames, dim, generator=gen), dim=-1)  # [N, T, D]
    owners = torch.randperm(videos, generator=gen)[:queries]  # [Q] one caption for each of Q videos
    picked = frame_emb[owners, torch.randint(frames, (len(owners),), generator=gen)]  # [Q, D]: one frame each
    noise = F.normalize(torch.randn(picked.shape, generator=gen), dim=-1)  # unit: as large as the frame itself
    captions = F.normalize(picked + noise_scale * noise, dim=-1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = XPoolHooks(dim, heads=1, dropout=0.3, eval_chunk=128).eval()
    return frame_emb, captions, owners, head


def from_gallery(path: str, queries: int):
    """(frames, captions, their videos, the model) of a text-conditioned gallery and its encoder."""
    from vop.retrieval.pipeline import RetrievalPipeline

    pipeline = RetrievalPipeline.from_gallery(path)
    gallery = pipeline.gallery
    if gallery.frame_emb is None:
        raise SystemExit(f"--gallery {path} holds no frame embeddings: build it from a method=xpool run")
    keep = [i for i, owner in enumerate(gallery.caption_video) if owner >= 0][:queries]
    return (gallery.frame_emb, gallery.text_emb[keep], torch.tensor([gallery.caption_video[i] for i in keep]),
            pipeline.encoder.model)


def prepare(model, frame_emb: torch.Tensor) -> tuple[Callable, float]:
    """(score(text [1, D], rows [K]) -> [1, K], seconds): the gallery's caption-independent part computed
    once, as RetrievalPipeline does."""
    device = next(model.parameters()).device
    tic = time.perf_counter()
    with torch.inference_mode():
        prepared = model.prepare_videos(frame_emb.to(device))
    seconds = time.perf_counter() - tic
    return (lambda t, rows: model.score_prepared(t.to(device), prepared, rows.to(device)).cpu()), seconds


def run(frame_emb: torch.Tensor, captions: torch.Tensor, owners: torch.Tensor,
        score: Callable, ks: list[int]) -> list[dict]:
    """One row per K (0 = exhaustive, first): recall@10, agreement with the exhaustive top 10, ms/query."""
    index = TorchIndex(mean_pool(frame_emb))
    n = frame_emb.shape[0]
    rows, exhaustive = [], None
    for k in [0, *ks]:
        tops, times = [], []
        with torch.inference_mode():
            two_stage_topk(score, captions[:1], index, n, k, TOP)  # warm-up, not timed
            for q in range(captions.shape[0]):
                tic = time.perf_counter()
                _, top = two_stage_topk(score, captions[q:q + 1], index, n, k, TOP)
                times.append((time.perf_counter() - tic) * 1000)
                tops.append(top.tolist())
        if exhaustive is None:
            exhaustive = tops
        recall = 100 * sum(int(o) in t for o, t in zip(owners.tolist(), tops)) / len(tops)
        agree = 100 * sum(len(set(a) & set(b)) for a, b in zip(tops, exhaustive)) / sum(map(len, exhaustive))
        rows.append({"K": k, "recall": recall, "agreement": agree, "ms": statistics.median(times)})
    return rows


def table(rows: list[dict], videos: int) -> str:
    exhaustive = rows[0]
    lines = [f"| K | recall@{TOP} two-stage | recall@{TOP} exhaustive | top-{TOP} kept | ms/query | speed-up |",
             "|---:|---:|---:|---:|---:|---:|"]
    for row in rows[1:] + rows[:1]:
        name = f"all {videos} (exhaustive)" if row["K"] == 0 else str(row["K"])
        lines.append(f"| {name} | {row['recall']:.1f} | {exhaustive['recall']:.1f} | {row['agreement']:.1f} | "
                     f"{row['ms']:.2f} | {exhaustive['ms'] / row['ms']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 50, 100, 200], help="shortlist sizes (rerank_k)")
    parser.add_argument("--gallery", help="a gallery built from a method=xpool run (default: synthetic)")
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=5.0,
                        help="synthetic: caption noise, in units of a frame embedding (5: recall@10 near 90%% at 1000 videos)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady figures on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(max(args.threads, 1))
    if any(k < 1 for k in args.ks) or min(args.videos, args.frames, args.dim, args.queries) < 1:
        parser.error("--ks, --videos, --frames, --dim and --queries must be >= 1")
    if args.gallery:
        frame_emb, captions, owners, model = from_gallery(args.gallery, args.queries)
        source = f"gallery {args.gallery}"
    else:
        args.queries = min(args.queries, args.videos)
        frame_emb, captions, owners, model = synthetic(args.videos, args.frames, args.dim, args.queries, args.seed,
                                                               args.noise)
        source = f"synthetic, seed {args.seed}, caption noise {args.noise:g}, X-Pool's initial head"
    n, t, d = frame_emb.shape
    score, seconds = prepare(model, frame_emb)
    device = next(model.parameters()).device
    print(f"two-stage search vs exhaustive: {n} videos x {t} frames x {d} ({source}), {captions.shape[0]} queries "
          f"one at a time; torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; the gallery's keys "
          f"and values computed once beforehand in {seconds:.2f} s")
    print(table(run(frame_emb, captions, owners, score, sorted(set(args.ks))), n))
