"""How vop writes the files it leaves for users: whole or not at all, with normal permissions, and
with a failure (a full disk, a read-only folder) raised as the OSError it is.

safetensors reports an I/O failure as its own `SafetensorError` ("... No space left on device (os
error 28)"), which `except OSError` does not catch, and creates its files readable by their owner
only (0600, from a private temporary file). `save_tensors` gives both the behaviour of every
other write: an `OSError` with the errno, and the permissions the user's umask gives.
"""
from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from safetensors import SafetensorError  # the Rust extension only: no torch (command-line checks use this module)

if TYPE_CHECKING:
    import torch

_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def as_os_error(err: BaseException, path: str | Path) -> BaseException:
    """`err` as an OSError when it is a safetensors I/O failure (its errno kept), else `err` itself."""
    if isinstance(err, SafetensorError):
        found = _OS_ERROR.search(str(err))
        if found:
            code = int(found.group(1))
            return OSError(code, os.strerror(code), str(path))
    return err


def umask() -> int:
    """The process's umask, read without changing it where Linux says it (setting it to read it back
    would, for a moment, let another thread create files with no mask)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_permissions(path: str | Path) -> None:
    """A file (or every file and folder under a folder) readable as the umask allows: 0644 under
    the usual umask 022, as `open()` and `mkdir` would have made them."""
    mask = umask()
    path = Path(path)
    targets = [path, *path.rglob("*")] if path.is_dir() else [path]
    for target in targets:
        if not target.is_symlink():
            target.chmod((0o777 if target.is_dir() else 0o666) & ~mask)


def write_whole(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` for a temporary file beside `path`, then rename it over `path`: readers see the
    old file or the new one, never half of one. A failed write removes the temporary file (a full
    disk gets its space back) and raises an OSError naming `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        normal_permissions(tmp)
        os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - re-raised, as an OSError when it is one
        raise as_os_error(err, path) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> Path:
    """A safetensors file written whole (`write_whole`), with normal permissions."""
    from safetensors.torch import save_file

    return write_whole(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def write_problem(folder: str | Path) -> str | None:
    """Why nothing can be written under `folder` (made if missing), or None: the first existing folder
    on its path is a file, or a probe file cannot be created there (a read-only disk, no permission)."""
    existing = Path(folder).expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return f"cannot write into {existing} ({err.strerror or err})"
    return None


def failure_reason(err: OSError) -> str:
    """'the disk is full (ENOSPC)' for a full disk or quota, else the system's words and the errno's name."""
    name = errno.errorcode.get(err.errno or 0, "")
    words = "the disk is full" if name in ("ENOSPC", "EDQUOT") else (err.strerror or str(err))
    return f"{words} ({name})" if name else words
