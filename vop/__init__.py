"""vop: parameter-efficient tuning of CLIP for text-video retrieval."""
import os
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]

# `${vop.root:}` in configs/paths resolves to the repository, wherever the command runs from.
if not OmegaConf.has_resolver("vop.root"):
    OmegaConf.register_new_resolver("vop.root", lambda: str(ROOT))


def _run_name(ckpt, method, data, overrides=None) -> str:
    from vop.engine.rundir import run_name  # imported on use: `import vop` stays light

    return run_name(ckpt, method, data, overrides)


# `${vop.run_name:...}` in configs/hydra names a run folder after what runs (eval.py ckpt=: the checkpoint's).
if not OmegaConf.has_resolver("vop.run_name"):
    OmegaConf.register_new_resolver("vop.run_name", _run_name)


def _basename(path, default: str = "") -> str:
    """The last name of a folder path (`~/clips/` -> `clips`), or `default` when the path is unset."""
    if not path:
        return default
    return os.path.basename(os.path.abspath(os.path.expanduser(str(path)))) or default


# `${vop.basename:<path>,<default>}`: data=custom names the data set after its videos folder.
if not OmegaConf.has_resolver("vop.basename"):
    OmegaConf.register_new_resolver("vop.basename", _basename)


def _workers(most=8) -> int:
    from vop.data.workers import default_workers

    return default_workers(most)


# `${vop.workers:8}`: data.num_workers defaults to at most 8, no more than this machine's cores per rank.
if not OmegaConf.has_resolver("vop.workers"):
    OmegaConf.register_new_resolver("vop.workers", _workers)
