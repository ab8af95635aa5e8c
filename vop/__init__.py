"""vop: parameter-efficient tuning of CLIP for text-video retrieval."""
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]

# `${vop.root:}` in configs/paths resolves to the repository, wherever the command runs from.
if not OmegaConf.has_resolver("vop.root"):
    OmegaConf.register_new_resolver("vop.root", lambda: str(ROOT))
