"""A trained run's stored config beside the command line's: which groups come from the checkpoint."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from vop.config.choices import CHOSEN_GROUPS, override_key
from vop.engine.checkpoint import check_compatible
from vop.errors import ConfigError

# Groups a checkpoint brings with it unless the command line chooses them explicitly.
FROM_CHECKPOINT = CHOSEN_GROUPS
# Keys that describe the machine, not the run: this machine's value, never the trained run's.
MACHINE_KEYS = ("data.num_workers",)


def chosen_on_command_line(overrides: Sequence[str], group: str) -> bool:
    """The command line names this group or one of its keys (`data=didemo`, `data.num_frames=8`)."""
    return any(override_key(o).split(".")[0] == group for o in overrides)


def option_chosen(overrides: Sequence[str], group: str) -> bool:
    """The command line chooses this group's option (`data=didemo`), not only some of its keys."""
    return any(override_key(o) == group for o in overrides)


def keys_set_on_command_line(overrides: Sequence[str], group: str) -> list[str]:
    """The dotted keys of `group` the command line sets (`data.num_workers=0` -> `data.num_workers`)."""
    return [override_key(o) for o in overrides if override_key(o).startswith(f"{group}.")]


def require_key(saved: DictConfig, key: str, path: Path) -> None:
    """A key set on the command line must be one of the trained run's: nothing would read another."""
    group, _, rest = key.partition(".")
    parent, _, leaf = rest.rpartition(".")
    node = OmegaConf.select(saved[group], parent) if parent else saved[group]
    if isinstance(node, DictConfig) and leaf in node:
        return
    keys = list(node.keys()) if isinstance(node, DictConfig) else []
    near = difflib.get_close_matches(leaf, [str(k) for k in keys], n=1)
    hint = f" (did you mean {group}.{parent + '.' if parent else ''}{near[0]}?)" if near else ""
    raise ConfigError(f"{key}: the trained run's {group} group ({saved[group].get('name', group)}, from {path}) has no "
                      f"such key, so nothing would read it{hint}; choose another {group} with {group}=<option> to "
                      "use that option's keys")


def merge_checkpoint_config(cfg: DictConfig, saved: DictConfig, overrides: Sequence[str], path: Path) -> DictConfig:
    """Take the trained run's model/method/data/decoder, except groups chosen on the command line
    (`data=didemo`); keys set there (`data.num_frames=8`) go over the trained run's group, and the
    machine's own keys (MACHINE_KEYS) are this machine's. `saved` is what read_checkpoint returns:
    rebuilt from the project's own groups and checked."""
    cfg = cfg.copy()
    here = {key: OmegaConf.select(cfg, key) for key in MACHINE_KEYS}
    with open_dict(cfg):
        for group in FROM_CHECKPOINT:
            if option_chosen(overrides, group):
                continue
            given = {key: OmegaConf.select(cfg, key) for key in keys_set_on_command_line(overrides, group)}
            for key in given:
                require_key(saved, key, path)
            cfg[group] = saved[group].copy()
            for key, value in {**here, **given}.items():
                if key.split(".")[0] == group and value is not None:
                    OmegaConf.update(cfg, key, value, force_add=True)
    check_compatible(saved, cfg, path)
    return cfg
