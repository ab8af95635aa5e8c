"""A two-stage synthetic benchmark that ranks the tuning methods on a CPU in minutes.

Stage 1 pretrains the tiny CLIP from scratch (method=full) on synthetic image-caption pairs
(`data=synthetic_stills`: one frame per video, captions name shape, colour and background only).
Stage 2 starts every method in configs/method/ from those weights (`model.net.weights=`) and
tunes it on the synthetic videos, whose captions also say which way the shape moves. Then
`vop.tables.make_table` writes the table (markdown + CSV) into the output folder.

    python scripts/synthetic_benchmark.py [--out outputs/synthetic_benchmark] [--methods full bias]

The recipe scales every method's learning rates by --lr-scale: the configs hold rates for
fine-tuning real CLIP (1e-6 for full), far too small for a tiny model and a few hundred steps.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
import torch  # noqa: E402

import vop  # noqa: E402,F401
from vop.engine.trainer import train  # noqa: E402
from vop.tables import make_table  # noqa: E402

log = logging.getLogger("synthetic_benchmark")
# Both stages: the tiny CLIP at 112 px (16-px patches: 49 tokens, as B/32 at 224), small videos.
COMMON = ["model=clip_tiny", "model.net.vision.image_size=112", "model.net.vision.patch_size=16",
          "data.frame_size=112", "data.splits.width=128", "data.splits.height=112", "data.splits.frames=16",
          "data.num_workers=1", "trainer.progress=false", "trainer.eval_every_epoch=false", "logger=local"]


def compose_train(overrides: list[str], out: Path, data_dir: str) -> "OmegaConf":
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="train", overrides=[*COMMON, f"paths.output_dir={out}",
                                                       f"paths.data_dir={data_dir}", *overrides])


def stage1(args: argparse.Namespace) -> Path:
    """Pretrain on image-caption pairs; returns the checkpoint holding every parameter."""
    out = Path(args.out) / "stage1_pretrain"
    if args.reuse_stage1 and (out / "checkpoint.safetensors").is_file():
        log.info("stage 1: reusing %s", out / "checkpoint.safetensors")
        return out / "checkpoint.safetensors"
    cfg = compose_train(["method=full", "data=synthetic_stills", f"data.splits.num_train={args.stage1_videos}",
                         f"trainer.epochs={args.stage1_epochs}", "method.lr=2e-3", "method.lr_new=2e-3",
                         "optim.weight_decay=0.05"], out, args.data_dir)
    metrics = train(cfg)
    log.info("stage 1 (image-caption pretraining): caption->image R@1 %.1f", metrics["test/t2v_R@1"])
    return out / "checkpoint.safetensors"


def stage2(args: argparse.Namespace, method: str, weights: Path) -> dict:
    """Tune the pretrained tiny CLIP with `method` on videos whose captions say the motion."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        base = compose(config_name="train", overrides=[f"method={method}"]).method
    lr, lr_new = base.lr * args.lr_scale, base.lr_new * args.lr_scale
    cfg = compose_train([f"method={method}", "data=synthetic", f"model.net.weights={weights}",
                         f"data.num_frames={args.frames}", f"data.splits.num_train={args.stage2_videos}",
                         f"data.splits.num_test={args.test_videos}",
                         f"trainer.epochs={args.stage2_epochs}", f"method.lr={lr}", f"method.lr_new={lr_new}"],
                        Path(args.out) / "stage2" / method, args.data_dir)
    return train(cfg)


def parse_args() -> argparse.Namespace:
    methods = sorted(p.stem for p in (ROOT / "configs" / "method").glob("*.yaml"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "synthetic_benchmark"))
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--methods", nargs="+", default=methods, help=f"default: every config ({', '.join(methods)})")
    # Defaults sized for all 13 methods in ~11 min wall, 12 CPU-minutes, on a shared 2-core CPU (README).
    parser.add_argument("--stage1-videos", type=int, default=1500)
    parser.add_argument("--stage1-epochs", type=int, default=5)
    parser.add_argument("--stage2-videos", type=int, default=500)
    parser.add_argument("--stage2-epochs", type=int, default=4)
    parser.add_argument("--test-videos", type=int, default=200, help="stage-2 test videos = queries per direction")
    parser.add_argument("--frames", type=int, default=4, help="frames per video in stage 2")
    parser.add_argument("--reuse-stage1", action="store_true", help="keep an existing stage-1 checkpoint in --out")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in the main process (the data worker takes another core); the tiny "
                             "model's matrices are too small to gain from more, and 2 threads on a busy 2-core "
                             "machine ran 3-4x slower than 1")
    parser.add_argument("--lr-scale", type=float, default=100.0, help="multiplies each method's lr and lr_new")
    return parser.parse_args()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    weights = stage1(args)
    for method in args.methods:
        tic = time.perf_counter()
        metrics = stage2(args, method, weights)
        log.info("stage 2 %s: t2v R@1 %.1f in %.0f s", method, metrics["test/t2v_R@1"], time.perf_counter() - tic)
    table = make_table([Path(args.out) / "stage2"], Path(args.out) / "table")
    print(table, end="")
    log.info("total %.1f min; table in %s.md/.csv", (time.perf_counter() - started) / 60, Path(args.out) / "table")


if __name__ == "__main__":
    main()
