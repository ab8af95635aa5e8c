"""One run, one writer: a run folder is locked while a run writes into it.

The lock is an advisory `flock` on `<run dir>/.vop-run.lock`, which also names its holder (host,
pid, command, start time). The kernel drops a `flock` when its process ends however it ends, so a
killed run's lock cannot block anyone: its file is left behind, still naming the run, and the next
run reclaims it with a WARNING. A second run into a folder in use, or a resume of a run that is still
going, is refused naming the holder. Only rank 0 of a torchrun job takes the lock (the other ranks
write into rank 0's folder); every multirun job has its own folder.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from vop.errors import UserError

log = logging.getLogger(__name__)

LOCK_FILE = ".vop-run.lock"
ANOTHER_FOLDER = "wait for it to finish, or give this run another folder (hydra.run.dir=...)"


class RunFolderBusyError(UserError):
    """Another live run holds the run folder."""


def describe(holder: dict) -> str:
    if not holder:
        return "a run that has not written its name yet"
    command = " ".join(holder.get("command", []))
    command = command if len(command) <= 200 else command[:200] + "..."
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
            f"{command}")


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 1 << 16)
    try:
        holder = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"pid": "?", "host": "?", "started": "?", "command": ["(an unreadable lock file)"]}
    return holder if isinstance(holder, dict) else {}


def _open_locked(path: Path) -> tuple[int | None, dict]:
    """(fd holding the flock, the previous holder's record) or (None, the live holder's record)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            return None, holder
        try:  # the holder may have released (and removed) the file between our open and flock
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            return fd, _read(fd)
        os.close(fd)


class RunLock:
    """`with RunLock(run_dir):` holds the folder for this process (reentrant use is an error)."""

    def __init__(self, run_dir: str | Path, what: str = "run folder"):
        self.run_dir, self.what = Path(run_dir), what
        self.path = self.run_dir / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd, holder = _open_locked(self.path)
        if fd is None:
            raise RunFolderBusyError(
                f"{self.what} {self.run_dir} is in use by a run that is still going ({describe(holder)}): two "
                f"runs writing into one folder would mix their logs and checkpoints; {ANOTHER_FOLDER}")
        if holder:
            log.warning("%s: reclaimed the lock of a run that ended without releasing it (%s)", self.run_dir,
                        describe(holder))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": sys.argv,
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # before the unlock: a waiting opener sees the new file
            os.close(self.fd)
            self.fd = None


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def launch_rank() -> int:
    """This process's rank as torchrun set it, before any process group exists (0 without torchrun)."""
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def require_not_in_use(run_dir: str | Path, what: str, advice: str = ANOTHER_FOLDER) -> None:
    """Refuse, naming the holder, a folder whose lock a live run holds (the folder a command is told
    to write into, the run a resume= names)."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return
    fd, holder = _open_locked(path)
    if fd is None:
        raise RunFolderBusyError(f"{what} {run_dir} is in use by a run that is still going ({describe(holder)}): "
                                 f"{advice}")
    os.close(fd)  # free (a killed run's file): left for the run that takes the folder to reclaim
