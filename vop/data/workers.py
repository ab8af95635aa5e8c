"""How many data-loading workers a process gets when the config does not say: what the machine has."""
from __future__ import annotations

import os


def usable_cpus() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(most: int) -> int:
    """`most` workers, but no more than this process's share of the cores: torchrun's ranks on one
    machine (LOCAL_WORLD_SIZE) share them. At least one, so loading overlaps the model's step.
    PyTorch's DataLoader warns when a process asks for more workers than it has cores."""
    ranks = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return max(1, min(int(most), usable_cpus() // ranks))
