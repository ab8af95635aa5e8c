"""The `${vop.*}` resolvers the config files call, registered once for every composition.

`vop/config/__init__.py` registers them when the config package is first imported, so every module
that composes or checks a config (all of them import vop.config) resolves them as the files say,
also from the Python API. `${vop.run_name:...}` is not here: it reads a checkpoint (the engine's
layer), and only Hydra's run folder uses it (vop/engine/rundir.py, registered by the Hydra mains).
"""
from __future__ import annotations

import os

from omegaconf import OmegaConf

from vop import ROOT
from vop.data.workers import default_workers


def repo_root() -> str:
    """`${vop.root:}` in configs/paths: the repository, wherever the command runs from."""
    return str(ROOT)


def basename(path: str | None, default: str = "") -> str:
    """`${vop.basename:<path>,<default>}`: the last name of a folder path (`~/clips/` -> `clips`), or
    `default` when the path is unset (data=custom names the data set after its videos folder)."""
    if not path:
        return default
    return os.path.basename(os.path.abspath(os.path.expanduser(str(path)))) or default


def workers(most: int = 8) -> int:
    """`${vop.workers:8}`: data.num_workers is at most `most`, no more than this machine's cores per rank."""
    return default_workers(most)


RESOLVERS = {"vop.root": repo_root, "vop.basename": basename, "vop.workers": workers}


def register_resolvers() -> None:
    """Register each resolver not yet registered (idempotent: every import and caller may ask)."""
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
