"""What every run leaves in its directory: resolved config, metrics.json."""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def save_config(run_dir: Path, cfg: DictConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)


def save_metrics(run_dir: Path, metrics: dict) -> Path:
    path = run_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def prefixed(metrics: dict[str, float], split: str) -> dict[str, float]:
    """`t2v_R@1` -> `test/t2v_R@1`."""
    return {f"{split}/{k}": v for k, v in metrics.items()}
