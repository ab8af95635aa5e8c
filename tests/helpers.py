"""Composing the real configs in tests, shrunk to the tiny model and a small synthetic dataset."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from vop.config.resolvers import register_resolvers

REPO_ROOT = Path(__file__).resolve().parent.parent  # tests/ sits at the repository root
CONFIG_DIR = str(REPO_ROOT / "configs")
register_resolvers()  # the composed configs' ${vop.*} values (vop.run_name: only Hydra's run folder reads it)

# A synthetic dataset small enough for many one-epoch runs on 2 CPU cores, trained on the CPU even
# where CUDA exists (tests compare bit-exact CPU results; GPU tests are marked `gpu` and pick CUDA).
SMALL_SYNTHETIC = [
    "trainer.device=cpu",
    "data.splits.num_train=48", "data.splits.num_test=16", "data.splits.frames=12",
    "data.splits.width=64", "data.splits.height=48", "data.num_frames=4", "data.batch_size=8",
    "data.eval_batch_size=8", "data.num_workers=0",
]


def compose_cfg(config_name: str, overrides: list[str], tmp: Path) -> DictConfig:
    """The real config with run outputs and data under `tmp` (no Hydra run dir needed)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=[
            f"paths.output_dir={tmp / 'run'}", f"paths.data_dir={tmp / 'data'}",
            "trainer.progress=false", *overrides])


def tiny_synthetic(method: str, tmp: Path, extra: list[str] = (), config_name: str = "train") -> DictConfig:
    return compose_cfg(config_name, [f"method={method}", "model=clip_tiny", "data=synthetic", "trainer.epochs=1",
                                     *SMALL_SYNTHETIC, *extra], tmp)


def method_config(name: str) -> DictConfig:
    """configs/method/<name>.yaml on its own, with its defaults list applied (the VoP variants extend vop.yaml)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=f"method/{name}").method


def cli(*args: str, cwd: Path = REPO_ROOT, **env: str) -> subprocess.CompletedProcess:
    """Run a repository script (`cli("train.py", "key=value", ...)`) offline, W&B off."""
    script, *rest = args
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *rest], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", **env})


def assert_one_block(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, `Error: ...` on stderr, no traceback, no repr of an exception."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Error: " in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "Error in call to target" not in proc.stderr and "\\n" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr[-3000:])
