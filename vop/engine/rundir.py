"""What every run leaves in its directory: resolved config, metrics.json."""
from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


LATEST = "latest"


def run_name(ckpt: str | None, method: str, data: str, overrides: list[str] | None = None) -> str:
    """`<method>_<data>` for the run folder; with `ckpt=` a trained run's method and data (as
    eval.py and retrieve.py take them from it) unless the command line chose them."""
    if not ckpt:
        return f"{method}_{data}"
    from vop.engine.checkpoint import CheckpointError, read_checkpoint  # torch: only when a ckpt is given
    from vop.engine.checkpoint_config import option_chosen

    try:
        saved = read_checkpoint(ckpt, tensors=False)[1]
    except CheckpointError:  # a released .pth, or a bad path that eval.py reports itself
        return f"{method}_{data}"
    overrides = list(overrides or [])
    method = method if option_chosen(overrides, "method") else saved.method.name
    data = data if option_chosen(overrides, "data") else saved.data.name
    return f"{method}_{data}"


def save_config(run_dir: Path, cfg: DictConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)


def save_metrics(run_dir: Path, metrics: dict) -> Path:
    path = run_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def link_latest(run_dir: Path) -> Path | None:
    """Point `<run dir's parent>/latest` at this run (a relative symlink, replaced atomically), so
    commands can name the newest finished run: `eval.py ckpt=outputs/train/latest`."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # a file system without symlinks: the run itself is complete, only the link is missing
        return None
    return link


def split_sizes(splits: dict) -> dict[str, int]:
    """`{"train/num_videos": 80, "train/num_captions": 160, "test/num_videos": 20, ...}` for metrics.json:
    the splits a run had (a user's own data set's held-out draw is visible without the log)."""
    return {f"{name}/{what}": getattr(split, what) for name, split in sorted(splits.items())
            for what in ("num_videos", "num_captions")}


def prefixed(metrics: dict[str, float], split: str) -> dict[str, float]:
    """`t2v_R@1` -> `test/t2v_R@1`."""
    return {f"{split}/{k}": v for k, v in metrics.items()}
