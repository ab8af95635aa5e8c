"""Does a tiny-CLIP checkpoint see where the shape is? The synthetic benchmark's direction probe needs it.

For the first and last frame of N synthetic probe videos (the shape moved by 45-70% of the free
width or height) it prints the mean cosine between the two frame embeddings next to the mean
cosine between different videos, and the held-out R^2 of a ridge regression from the frame
embedding to the shape's (x, y) centre (0: no better than predicting the mean).

    python scripts/position_readout.py outputs/synthetic_benchmark/stage1_pretrain/checkpoint.safetensors
"""
from __future__ import annotations

import argparse

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from vop import ROOT
from vop.config.resolvers import register_resolvers
from vop.data.gpu_transforms import VideoTransform
from vop.data.synthetic import DIRECTIONS, render, twin_plan
from vop.errors import ArgumentParser

FRAMES, WIDTH, HEIGHT, SIZE = 20, 128, 112, 112  # the benchmark's videos and model input


def frame_embeddings(model, specs) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last frame of each spec -> embeddings [2N, D] (firsts, then lasts) and centres [2N, 2]."""
    transform, embs, centres = VideoTransform(size=SIZE, train=False), [], []
    for spec in specs:
        frames = transform(torch.from_numpy(render(spec, FRAMES, WIDTH, HEIGHT))[[0, FRAMES - 1]][None])
        with torch.no_grad():
            embs.append(model.encode_frames(frames.flatten(0, 1), 2))  # [2, D]
        dx, dy = DIRECTIONS[spec.direction]
        travel = spec.step * (FRAMES - 1)
        centres.append(torch.tensor([spec.start, (spec.start[0] + dx * travel, spec.start[1] + dy * travel)]))
    embs, centres = torch.stack(embs), torch.stack(centres)  # [N, 2, D], [N, 2, 2]
    return embs.transpose(0, 1).flatten(0, 1), centres.transpose(0, 1).flatten(0, 1).double()


def ridge_r2(x: torch.Tensor, y: torch.Tensor, train: int, alpha: float = 1e-2) -> list[float]:
    """Fit on the first `train` rows, R^2 per output column on the rest."""
    x = x.double()
    mean = y[:train].mean(0)
    w = torch.linalg.solve(x[:train].T @ x[:train] + alpha * torch.eye(x.shape[1], dtype=x.dtype),
                           x[:train].T @ (y[:train] - mean))
    pred, truth = x[train:] @ w + mean, y[train:]
    return (1 - ((pred - truth) ** 2).sum(0) / ((truth - truth.mean(0)) ** 2).sum(0)).tolist()


def main() -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="all-parameter safetensors of the 112-px tiny CLIP (stage 1)")
    parser.add_argument("--videos", type=int, default=320)
    args = parser.parse_args()
    torch.set_num_threads(1)
    register_resolvers()  # the composed config's ${vop.*} values
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["model=clip_tiny", f"model.net.vision.image_size={SIZE}",
                                          "model.net.vision.patch_size=16", f"model.net.weights={args.checkpoint}"])
    model = instantiate(cfg.model.net).eval()
    specs = [spec for spec, _ in twin_plan("probe", args.videos, 0, FRAMES, WIDTH, HEIGHT)[::2]]
    embs, centres = frame_embeddings(model, specs)  # [2N, D], [2N, 2]
    n = len(specs)
    firsts, lasts = embs[:n], embs[n:]
    others = (firsts @ firsts.T)[~torch.eye(n, dtype=torch.bool)]
    order = torch.randperm(2 * n, generator=torch.Generator().manual_seed(0))
    r2 = ridge_r2(embs[order], centres[order], train=int(1.5 * n))
    print(f"cosine, first vs last frame of a video: {(firsts * lasts).sum(-1).mean():.4f}")
    print(f"cosine, first frames of different videos: {others.mean():.4f}")
    print(f"held-out R^2 of the shape's (x, y) from the frame embedding: {r2[0]:.3f}, {r2[1]:.3f}")
