"""Config files read outside a Hydra run: a group's option files, and a YAML with its defaults list applied."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def option_files(folder: Path) -> list[Path]:
    """A config group's options (configs/<group>/*.yaml), sorted; `_base.yaml` and other files whose
    name starts with `_` hold keys the options share and are no option themselves."""
    return sorted(p for p in Path(folder).glob("*.yaml") if not p.stem.startswith("_"))


def option_names(folder: Path) -> list[str]:
    """The names of a config group's options: `method=<name>`."""
    return [p.stem for p in option_files(folder)]


def method_configs(folder: Path) -> dict[str, object]:
    """Every method option of configs/method/, loaded on its own (so `frames` takes its default of 12)."""
    return {p.stem: load_with_defaults(p) for p in option_files(folder)}


def load_with_defaults(path: Path):
    """A group config with its defaults list applied as Hydra does, without a Hydra context (this
    runs inside other Hydra apps and on stored configs): an entry of the same group (`defaults:
    [vop, _self_]`: vop.yaml, then this file over it) or of a subgroup at its key (`arch: vit_b32`:
    <group>/arch/vit_b32.yaml as `arch`)."""
    cfg = OmegaConf.load(path)
    entries = list(cfg.pop("defaults", None) or [])
    parts = [cfg if entry == "_self_" else _default(path, entry) for entry in entries]
    if "_self_" not in entries:
        parts.append(cfg)  # Hydra's default: _self_ last
    return OmegaConf.merge(*parts)


def _default(path: Path, entry):
    if isinstance(entry, str):
        return load_with_defaults(path.with_name(f"{entry}.yaml"))
    (sub, option), = entry.items()  # {subgroup: option}
    return OmegaConf.create({sub: load_with_defaults(path.parent / sub / f"{option}.yaml")})
