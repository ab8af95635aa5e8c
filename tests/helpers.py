"""Composing the real configs in tests, shrunk to the tiny model and a small synthetic dataset."""
from __future__ import annotations

import io
import logging
import os
import runpy
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Callable
from unittest import mock

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from vop.config.command_line import over_checkpoint, quoted_free_text
from vop.config.resolvers import register_resolvers
from vop.errors import exit_on_user_error

REPO_ROOT = Path(__file__).resolve().parent.parent  # tests/ sits at the repository root
CONFIG_DIR = str(REPO_ROOT / "configs")
register_resolvers()  # the composed configs' ${vop.*} values (vop.run_name: only Hydra's run folder reads it)

# A synthetic dataset small enough for many one-epoch runs on 2 CPU cores, trained on the CPU even
# where CUDA exists (tests compare bit-exact CPU results; GPU tests are marked `gpu` and pick CUDA).
# 64-px frames and 16-px patches: the tiny model at a quarter of the cost, enough to learn a little.
SMALL_MODEL = ["model.net.vision.image_size=64", "model.net.vision.patch_size=16", "data.frame_size=48"]
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


def captured(run: Callable[[], object], what: str) -> subprocess.CompletedProcess:
    """`run()` in this interpreter with what a process would show: stdout, stderr (log records at
    INFO and above too, as the entry points' console logging prints them) and an exit status, 0, a
    SystemExit's code, or 1 and the traceback on stderr for any other exception (what an uncaught one
    prints when a process ends on it). Returned like cli()'s, for the same assertions."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("[%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    level, root.level = root.level, logging.INFO
    root.addHandler(handler)
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                run()
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
                if isinstance(stop.code, str):  # sys.exit("text"): Python prints it, then exit status 1
                    print(stop.code, file=sys.stderr)
            except Exception:  # noqa: BLE001 - shown as a process would show it, and the test asserts on it
                traceback.print_exc()
                code = 1
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return subprocess.CompletedProcess([what], code, out.getvalue(), err.getvalue())


def in_process(command: Callable[[], object]) -> subprocess.CompletedProcess:
    """`command()` wrapped as every entry point wraps its command (`exit_on_user_error`: a user error
    is one `Error:` block and exit status 2), run in this interpreter: the message without the 8-10 s
    of a fresh interpreter's imports. cli() is for what needs the process: Hydra's own main (its run
    folder, logging, multirun), a real exit status, signals."""
    return captured(exit_on_user_error(command), getattr(command, "__name__", "command"))


def command_in_process(command: Callable[..., object], config_name: str, tmp: Path, *args: str
                       ) -> subprocess.CompletedProcess:
    """What `python <config_name>.py *args` runs once Hydra has composed, in this interpreter: the
    command (`vop.commands` train / evaluate_run / retrieve) on the config composed from `args` as
    that entry point hands them to Hydra (eval.py and retrieve.py: a key of the trained run's group
    over it with `ckpt=`; retrieve.py: query text quoted), wrapped by in_process. The run's outputs go
    to `tmp/run` (there is no Hydra run folder: naming it, and `latest`, are cli()'s)."""
    overrides = list(args)
    if config_name in ("eval", "retrieve"):
        overrides = over_checkpoint(overrides)
    if config_name == "retrieve":
        overrides = quoted_free_text(overrides)
    cfg = compose_cfg(config_name, overrides, tmp)
    return in_process(lambda: command(cfg, overrides))


def main_in_process(script: str, *args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    """A repository script's `__main__` (`main_in_process("train.py", "method=bais")`) run in this
    interpreter up to Hydra's main: its own checks of the command line, or argparse's, with the
    script's own wrapping, exit status and output. Hydra's main itself is not run here (it would
    configure this process's logging and Hydra's global state): a command line that gets that far
    fails the test with a traceback naming cli(), which runs it in a process."""
    def hydra_main(*_, **__):
        def decorate(_task):
            def reached(*_, **__):
                raise AssertionError(f"{script} {' '.join(args)} reached Hydra's main: test it with cli()")
            return reached
        return decorate

    argv, path, where = sys.argv, list(sys.path), os.getcwd()
    sys.argv = [str(REPO_ROOT / script), *args]
    os.chdir(cwd)
    try:
        with mock.patch("hydra.main", hydra_main):
            return captured(lambda: runpy.run_path(str(REPO_ROOT / script), run_name="__main__"), script)
    finally:
        sys.argv, sys.path[:] = argv, path
        os.chdir(where)


def assert_one_block(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, `Error: ...` on stderr, no traceback, no repr of an exception."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Error: " in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "Error in call to target" not in proc.stderr and "\\n" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr[-3000:])
