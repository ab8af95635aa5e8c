"""Real small and read-only file systems for the tests of full disks and read-only folders.

A tmpfs is mounted over a test's own folder (root with CAP_SYS_ADMIN: containers and CI as root
can; elsewhere the test is skipped, saying why). What it shows that a faked OSError cannot: the
error types the libraries really raise (safetensors raises its own `SafetensorError` on a full disk),
and a write that fails half way through a file."""
from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def tmpfs(folder: Path, size_kb: int, read_only: bool = False) -> Iterator[Path]:
    """`folder` (made if missing) as a fresh tmpfs of `size_kb` KiB, unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                              text=True)
    except FileNotFoundError:
        pytest.skip("no `mount` command here (util-linux): a tmpfs cannot be mounted")
    if proc.returncode:
        pytest.skip(f"cannot mount a {size_kb} KiB tmpfs here (needs root with CAP_SYS_ADMIN): "
                    f"{(proc.stderr or proc.stdout).strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def grow(folder: Path, size_kb: int) -> None:
    """Make room: the tmpfs at `folder` remounted at `size_kb` KiB, its files kept."""
    subprocess.run(["mount", "-o", f"remount,size={size_kb}k", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Fill the file system of `folder` to the last byte (a file of zeros, written until ENOSPC)."""
    block = bytes(4096)
    with open(folder / ".filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
    for size in (512, 64, 1):  # the last partial block
        with open(folder / ".filler", "ab", buffering=0) as f:
            try:
                while True:
                    f.write(bytes(size))
            except OSError:
                pass
