"""Config files read outside a Hydra run: a group's YAML with its defaults list applied."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def method_configs(folder: Path) -> dict[str, object]:
    """Every configs/method/*.yaml, loaded on its own (so `frames` takes its default of 12)."""
    return {p.stem: load_with_defaults(p) for p in sorted(Path(folder).glob("*.yaml"))}


def load_with_defaults(path: Path):
    """A group config with its defaults list applied as Hydra does for entries of the same group
    (`defaults: [vop, _self_]`: vop.yaml, then this file over it), without a Hydra context (this
    runs inside scripts/param_table.py's own Hydra app)."""
    cfg = OmegaConf.load(path)
    entries = list(cfg.pop("defaults", None) or [])
    parts = [cfg if entry == "_self_" else load_with_defaults(path.with_name(f"{entry}.yaml")) for entry in entries]
    if "_self_" not in entries:
        parts.append(cfg)  # Hydra's default: _self_ last
    return OmegaConf.merge(*parts)
