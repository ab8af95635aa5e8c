"""A two-stage synthetic benchmark that ranks the tuning methods on a CPU in minutes.

Stage 1 pretrains the tiny CLIP from scratch (method=full) on synthetic image-caption pairs
(`data=synthetic_stills`: one frame per video, captions name shape, colour and background only).
Stage 2 starts every method in configs/method/ from those weights (`model.net.weights=`) and
tunes it on the synthetic videos, whose captions also say which way the shape moves, once per
seed (`--seeds`): by default on pairs of a video and its time-reversed twin that share a batch
(`--train-on twins`), so that telling the direction apart lowers the loss. Each run is evaluated
on the test split and on the direction probe (other such pairs, vop/tools/direction_probe.py). `vop.tools.make_table.make_table` writes the table
(markdown + CSV, mean ± standard error over seeds) into the output folder.

    python scripts/synthetic_benchmark.py [--out outputs/synthetic_benchmark] [--methods full bias] [--seeds 3]
    python scripts/synthetic_benchmark.py --full      # more seeds and steps: see FULL

A method name with the suffix `+t` (e.g. `vop_f+t`) runs that config with method.tuner.temporal=true.

The recipe scales every method's learning rates by --lr-scale: the configs hold rates for
fine-tuning real CLIP (1e-6 for full), far too small for a tiny model and a few hundred steps.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
import torch

from vop import ROOT
from vop.commands.train import train
from vop.config.files import option_names
from vop.config.resolvers import register_resolvers
from vop.engine import distributed
from vop.engine.checkpoint import FILENAME
from vop.engine.rundir import save_metrics
from vop.engine.assembly import build_trainer
from vop.errors import ArgumentParser
from vop.tools.direction_probe import probe_metrics
from vop.tools.make_table import make_table

log = logging.getLogger("synthetic_benchmark")
# Both stages: the tiny CLIP at 112 px (16-px patches: 49 tokens, as B/32 at 224), small videos.
COMMON = ["model=clip_tiny", "model.net.vision.image_size=112", "model.net.vision.patch_size=16",
          "data.frame_size=112", "data.splits.width=128", "data.splits.height=112",
          "data.num_workers=1", "trainer.progress=false", "trainer.eval_every_epoch=false", "logger=local"]
TEMPORAL = "+t"  # method-name suffix: the config with method.tuner.temporal=true
# --full: what changes from the defaults (the default command stays under 20 minutes on 2 CPU cores).
FULL = {"seeds": 5, "stage1_videos": 3000, "stage1_epochs": 8, "stage2_videos": 2000, "stage2_epochs": 8}


def compose_train(overrides: list[str], out: Path, data_dir: str) -> "OmegaConf":
    register_resolvers()  # the run reads ${vop.workers:...} and ${vop.root:}
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="train", overrides=[*COMMON, f"paths.output_dir={out}",
                                                       f"paths.data_dir={data_dir}", *overrides])


def video_frames(args: argparse.Namespace) -> str:
    # 5 video frames per sampled frame: uniform sampling then picks frames symmetric in time, so a
    # probe video's time-reversed twin shows the model exactly the same frames in reverse order.
    return f"data.splits.frames={5 * args.frames}"


def stage1(args: argparse.Namespace) -> Path:
    """Pretrain on image-caption pairs; returns the checkpoint holding every parameter."""
    out = Path(args.out) / "stage1_pretrain"
    if args.reuse_stage1 and (out / "checkpoint.safetensors").is_file():
        log.info("stage 1: reusing %s", out / "checkpoint.safetensors")
        return out / "checkpoint.safetensors"
    if args.positions:  # pairs of stills: one shape at two places, captions say where (synthetic_stills.py)
        data = ["data.splits.positions=true", "data.train_sampling=uniform", "data.train_split=twins",
                f"data.splits.num_twins={args.stage1_videos // 2}", "data.shuffle_group=2", "data.splits.frames=2",
                "data.splits.num_train=1"]
    else:
        data = [f"data.splits.num_train={args.stage1_videos}", video_frames(args)]
    cfg = compose_train(["method=full", "data=synthetic_stills", *data,
                         f"trainer.epochs={args.stage1_epochs}", "method.lr=2e-3",
                         "method.lr_new=2e-3", "optim.weight_decay=0.05"], out, args.data_dir)
    metrics = train(cfg)
    log.info("stage 1 (image-caption pretraining): caption->image R@1 %.1f", metrics["test/t2v_R@1"])
    return out / "checkpoint.safetensors"


def stage2_overrides(args: argparse.Namespace, method: str, weights: Path, seed: int) -> list[str]:
    """One shared recipe: every method's lr and lr_new from its config times --lr-scale."""
    config = method.removesuffix(TEMPORAL)
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        base = compose(config_name="train", overrides=[f"method={config}"]).method
    extra = ["method.tuner.temporal=true", f"method.name={method}"] if method.endswith(TEMPORAL) else []
    if args.train_on == "twins":  # pairs of time-reversed twins, each pair in one batch (hard negatives)
        train = ["data.train_split=twins", f"data.splits.num_twins={args.stage2_videos // 2}", "data.shuffle_group=2",
                 "data.splits.num_train=1"]  # the plain training split goes unused: keep it to one video
    else:
        train = [f"data.splits.num_train={args.stage2_videos}"]
    return [f"method={config}", *extra, "data=synthetic", f"model.net.weights={weights}", f"seed={seed}",
            f"data.num_frames={args.frames}", video_frames(args), *train,
            f"data.splits.num_test={args.test_videos}", f"data.splits.num_probe={args.probe_pairs}",
            f"trainer.epochs={args.stage2_epochs}", f"method.lr={base.lr * args.lr_scale}",
            f"method.lr_new={base.lr_new * args.lr_scale}"]


def stage2(args: argparse.Namespace, method: str, weights: Path, seed: int) -> dict:
    """Tune the pretrained tiny CLIP with `method`, evaluate on test and on the direction probe."""
    out = Path(args.out) / "stage2" / method / f"seed{seed}"
    if args.reuse_stage2 and "probe/t2v_direction_acc@se" in _saved(out):
        log.info("stage 2 %s seed %d: reusing %s", method, seed, out)
        return _saved(out)
    if args.reuse_stage2 and "probe/t2v_direction_acc" in _saved(out):  # written before the probe's error bars
        return reprobe(args, method, weights, seed, out)
    trainer = build_trainer(compose_train(stage2_overrides(args, method, weights, seed), out, args.data_dir))
    try:
        metrics = {**trainer.fit(), **probe_metrics(trainer)}
    finally:
        distributed.cleanup()
    save_metrics(out, metrics)  # the run's metrics.json, now with probe/*
    return metrics


def reprobe(args: argparse.Namespace, method: str, weights: Path, seed: int, out: Path) -> dict:
    """The probe again for a finished run, from its checkpoint (zero-shot: the stage-1 weights)."""
    log.info("stage 2 %s seed %d: probing %s again", method, seed, out)
    cfg = compose_train(stage2_overrides(args, method, weights, seed), out / "reprobe", args.data_dir)
    trainer = build_trainer(cfg, ckpt=out / FILENAME if (out / FILENAME).is_file() else None)
    try:
        metrics = {**_saved(out), **probe_metrics(trainer)}
    finally:
        distributed.cleanup()
    shutil.rmtree(out / "reprobe", ignore_errors=True)
    save_metrics(out, metrics)
    return metrics


def _saved(run: Path) -> dict:
    path = run / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def seeds_for(method: str, seeds: int) -> range:
    # Zero-shot trains nothing: every seed would give the same numbers, so it runs once.
    return range(1 if method == "zeroshot" else seeds)


def parse_args() -> argparse.Namespace:
    methods = option_names(ROOT / "configs" / "method")
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "synthetic_benchmark"))
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--methods", nargs="+", default=methods,
                        help=f"configs, optionally with the suffix {TEMPORAL} (default: every config: {', '.join(methods)})")
    parser.add_argument("--seeds", type=int, default=2, help="stage-2 runs per method (seeds 0..N-1)")
    parser.add_argument("--stage1-videos", type=int, default=1500)
    parser.add_argument("--stage1-epochs", type=int, default=5)
    parser.add_argument("--stage2-videos", type=int, default=1000, help="stage-2 training videos")
    parser.add_argument("--train-on", choices=("twins", "train"), default="twins",
                        help="twins: pairs of a video and its time-reversed twin, one caption each, each pair in "
                             "one batch; train: the plain split (random videos, two captions each)")
    parser.add_argument("--stage2-epochs", type=int, default=4)
    parser.add_argument("--test-videos", type=int, default=200, help="stage-2 test videos = queries per direction")
    parser.add_argument("--probe-pairs", type=int, default=100, help="direction probe: (video, reversed twin) pairs")
    parser.add_argument("--positions", type=lambda v: v.lower() in ("1", "true", "yes"), default=False,
                        help="true: stage 1 on pairs of stills showing one shape at two places, captions saying "
                             "where it is (docs/benchmarks.md: did not make the tiny model encode positions)")
    parser.add_argument("--frames", type=int, default=4, help="frames per video in stage 2")
    parser.add_argument("--full", action="store_true", help=f"the larger preset: {FULL}")
    parser.add_argument("--reuse-stage1", action="store_true", help="keep an existing stage-1 checkpoint in --out")
    parser.add_argument("--reuse-stage2", action="store_true", help="keep finished stage-2 runs in --out")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in the main process (the data worker takes another core); the tiny "
                             "model's matrices are too small to gain from more, and 2 threads on a busy 2-core "
                             "machine ran 3-4x slower than 1")
    parser.add_argument("--lr-scale", type=float, default=100.0, help="multiplies each method's lr and lr_new")
    args = parser.parse_args()
    if args.full:
        vars(args).update(FULL)
    return args


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    weights = stage1(args)
    for seed in range(args.seeds):  # seed-major: a stopped run still has every method at the first seeds
        for method in (m for m in args.methods if seed in seeds_for(m, args.seeds)):
            tic = time.perf_counter()
            metrics = stage2(args, method, weights, seed)
            log.info("stage 2 %s seed %d: t2v R@1 %.1f, direction t2v %.1f%% v2t %.1f%% in %.0f s", method, seed,
                     metrics["test/t2v_R@1"], metrics["probe/t2v_direction_acc"],
                     metrics["probe/v2t_direction_acc"], time.perf_counter() - tic)
    runs = [Path(args.out) / "stage2" / m / f"seed{s}" for m in args.methods for s in seeds_for(m, args.seeds)]
    table = make_table(runs, Path(args.out) / "table")
    print(table, end="")
    log.info("total %.1f min; table in %s.md/.csv", (time.perf_counter() - started) / 60, Path(args.out) / "table")
