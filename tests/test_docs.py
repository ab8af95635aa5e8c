"""The shell blocks marked `bash` in README.md and docs/*.md run as written after the demo.

Convention (README "Train and evaluate"): a ```bash block runs on a CPU from the repository root
once `python train.py experiment=demo` has run; a ```console block needs a real dataset, weights,
a GPU, or is the install/demo itself. The default suite runs the README's blocks after a short
run of the demo config (the demo's dataset, its run as outputs/train/latest), but for the two that
take most of a minute each (they train on a sample collection, or build and measure a moment
gallery); `-m slow` (CI runs it after the default suite) runs the demo as written and then every
block of the README and docs, those two included.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
COPIED = ("train.py", "eval.py", "retrieve.py", "configs", "vop", "scripts")
DEMO = "python train.py experiment=demo"


def blocks(path: Path, language: str = "bash") -> list[tuple[str, str]]:
    """(id "<file>:<line>", text) of each block in `path` fenced as ```<language>."""
    text = path.read_text()
    return [(f"{path.relative_to(REPO_ROOT)}:{text[:m.start()].count(chr(10)) + 1}", m.group(2))
            for m in BLOCK.finditer(text) if m.group(1) == language]


README_BLOCKS = blocks(REPO_ROOT / "README.md")
LONG_BLOCKS = ("scripts/sample_collection.py", "data=synthetic_long")  # run by the slow test only (module docstring)
DOCS_BLOCKS = [b for page in sorted((REPO_ROOT / "docs").glob("*.md")) for b in blocks(page)]


def run(command: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def clone(tmp: Path) -> Path:
    """The code and configs in a fresh folder: what the blocks write stays out of this checkout."""
    root = tmp / "vop"
    root.mkdir()
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    return root


def after(root: Path, demo: str) -> Path:
    proc = run(f"{demo} trainer.progress=false", root, timeout=3600)  # the demo: 4 min idle, 20 on a loaded CPU
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (root / "outputs" / "train" / "latest" / "checkpoint.safetensors").is_file()
    return root


@pytest.fixture(scope="module")
def after_short_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's dataset and a 2-step run of the demo config: every path the demo creates."""
    return after(clone(tmp_path_factory.mktemp("short")), f"{DEMO} trainer.epochs=1 trainer.max_steps_per_epoch=2")


@pytest.fixture(scope="module")
def after_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return after(clone(tmp_path_factory.mktemp("demo")), DEMO)


def check(block: str, root: Path, learned: bool = False) -> None:
    """Run `block`; `learned`: its last evaluation ranks well above chance (R@1 at least twice chance)."""
    proc = run(block, root)
    assert proc.returncode == 0, f"{block}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert "Error:" not in proc.stderr
    assert not (root / "outputs" / "retrieve").exists()  # builds and queries leave no run folder
    if "eval.py ckpt=outputs/train/latest" in block:  # named after what the checkpoint is, and said where
        latest = (root / "outputs" / "eval" / "latest").resolve()
        trained = (root / "outputs" / "train" / "latest").resolve().name.split("_", 2)[-1]  # <date>_<time>_<what>
        assert latest.name.endswith(f"_{trained}") and (latest / "metrics.json").is_file()
        assert f"metrics in {latest / 'metrics.json'}" in proc.stdout + proc.stderr
    if "query=" in block:
        assert "t2v query: " in proc.stdout or "v2t query: " in proc.stdout
    if learned:
        found = re.findall(r"text->video R@1 ([\d.]+) \(chance ([\d.]+)\)", proc.stdout + proc.stderr)
        r1, chance = map(float, found[-1])  # eval's line, the block's last
        assert r1 >= 2 * chance, (r1, chance)


def test_the_readme_has_runnable_blocks_and_names_the_demo() -> None:
    assert len(README_BLOCKS) >= 2 and DOCS_BLOCKS
    assert any(DEMO in text for _, text in blocks(REPO_ROOT / "README.md", "console"))
    for _, text in README_BLOCKS + DOCS_BLOCKS:
        code = re.sub(r"(^|\s)#.*$", "", text, flags=re.M)  # comments may say <run dir>; commands may not
        assert "<" not in code, f"a placeholder in a runnable block:\n{text}"


QUICK_BLOCKS = [(name, block) for name, block in README_BLOCKS if not any(long in block for long in LONG_BLOCKS)]


@pytest.mark.parametrize("name,block", QUICK_BLOCKS, ids=[n for n, _ in QUICK_BLOCKS])
def test_readme_block_runs_after_the_demo(name: str, block: str, after_short_demo: Path) -> None:
    check(block, after_short_demo)


@pytest.mark.slow  # the demo as written (~4 min on 2 cores), then every block: ~7 min
@pytest.mark.parametrize("name,block", README_BLOCKS + DOCS_BLOCKS, ids=[n for n, _ in README_BLOCKS + DOCS_BLOCKS])
def test_every_block_runs_after_the_demo(name: str, block: str, after_demo: Path) -> None:
    check(block, after_demo, learned="sample_collection.py" in block or "demo_clips" in block)


def test_the_long_blocks_are_in_the_readme() -> None:
    """Each block left to the slow run is still there: a renamed command would leave it out of both."""
    for long in LONG_BLOCKS:
        assert sum(long in block for _, block in README_BLOCKS) == 1, long
    assert len(QUICK_BLOCKS) == len(README_BLOCKS) - len(LONG_BLOCKS)


def test_python_of_the_blocks_is_this_interpreter() -> None:
    """The blocks call `python`: the interpreter running the tests must be the one on PATH."""
    found = shutil.which("python")
    assert found and Path(found).resolve().name.startswith("python"), found
    assert run("python -c 'import sys; print(sys.prefix)'", REPO_ROOT).stdout.strip() == sys.prefix
