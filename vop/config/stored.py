"""A config stored in someone else's file (a checkpoint, a gallery) read as values, never as code.

What gets instantiated comes only from the project's own config groups (configs/<group>/): a stored
group names its option (`method.name: vop` -> configs/method/vop.yaml), or, where the name is free
(a user's own data set) or the group has none (decoder), is matched to the one option whose
`_target_`s it repeats. The stored values are merged over that option and checked by the group's
schema, exactly like command-line values. Refused, naming the file and the key: a `_target_` (or
another Hydra directive) the option does not have at that key, an interpolation (`${...}` would run
a resolver), a name that is no option, a key the schema does not know. Nothing the file names is
imported: a refused `_target_` is compared as a string. A file written before a rename is read
under today's names (RETIRED_KEYS, RENAMED_KEYS, RENAMED_TARGETS).
"""
from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf

import vop
from vop.config.choices import CHOSEN_GROUPS
from vop.config.files import load_with_defaults, option_files
from vop.config.groups import GROUPS
from vop.config.schema import HYDRA_KEYS, check_group
from vop.errors import ConfigError

CONFIG_DIR = Path(vop.ROOT) / "configs"
# The groups a stored config may bring: what rebuilds a trained model and its encoder.
STORED_GROUPS = ("model", "method", "data", "decoder", "trainer")
# Keys older layouts stored that today's name elsewhere: dropped on reading (VoP's tuner once
# repeated `method.name`; the method is now named once, by its config).
RETIRED_KEYS = ("method.tuner.name",)
# Keys older layouts stored under another name: renamed in place on reading, {old key: new leaf}.
# VoP^F's first inter-frame layer was `split`, a word that everywhere else means a data split.
RENAMED_KEYS = {"method.tuner.split": "inter_from"}
# `_target_`s older layouts stored under a class's former name: every method class is now named
# <What>Tuning. Compared and replaced as strings, never imported.
RENAMED_TARGETS = {"vop.methods.vop.VoP": "vop.methods.vop.VoPTuning",
                   "vop.methods.zeroshot.ZeroShot": "vop.methods.zeroshot.ZeroShotTuning"}


class StoredConfigError(ConfigError):
    """A file's stored config that would choose code, or whose values break the schema."""


@lru_cache(maxsize=None)
def options(group: str) -> dict[str, DictConfig]:
    """Every option of a config group, as its YAML file composes (defaults applied), by file stem."""
    return {p.stem: load_with_defaults(p) for p in option_files(CONFIG_DIR / group)}


def directives(node: Any, prefix: str = "") -> dict[str, Any]:
    """{key path: value} of every Hydra directive (`_target_`, `_partial_`, ...) under `node`."""
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)  # an option's interpolations stay unresolved
    found = {}
    if isinstance(node, Mapping):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if k in HYDRA_KEYS:
                found[path] = v
            else:
                found.update(directives(v, path))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found.update(directives(v, f"{prefix}[{i}]"))
    return found


def values_only(node: Any, source: str, path: str) -> Any:
    """A plain copy of `node` without Hydra directives; an interpolation is refused."""
    if isinstance(node, Mapping):
        return {k: values_only(v, source, f"{path}.{k}") for k, v in node.items() if k not in HYDRA_KEYS}
    if isinstance(node, list):
        return [values_only(v, source, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        raise StoredConfigError(f"{source}: {path}={node!r} is not allowed: a stored config holds values, "
                                "not interpolations (they run resolvers)")
    if node is not None and not isinstance(node, str | int | float | bool):
        raise StoredConfigError(f"{source}: {path} holds a {type(node).__name__}, not a config value")
    return node


def choose_option(group: str, stored: Mapping, source: str) -> str:
    """The project's option a stored group belongs to: by its name, else by the `_target_`s it repeats.

    A name that is no option (a run named with `method.name=my_vop`, a user's own data set) is a
    label: the code then comes from the first option whose `_target_`s the file repeats (options that
    share them differ only in values, and every value is the file's, checked by the schema)."""
    wanted = directives(stored)
    fits = {name: all(directives(opt).get(k) == v for k, v in wanted.items())
            for name, opt in options(group).items()}
    name = stored.get("name")
    if isinstance(name, str) and fits.get(name):
        return name
    if isinstance(name, str) and name in fits:
        bad = next(k for k, v in wanted.items() if directives(options(group)[name]).get(k) != v)
        raise StoredConfigError(
            f"{source}: {group}.{bad}={wanted[bad]} is not allowed: a stored config cannot choose code; "
            f"configs/{group}/{name}.yaml has {group}.{bad}={directives(options(group)[name]).get(bad)}")
    by_code = [n for n, ok in fits.items() if ok] if wanted else []
    if by_code:
        return by_code[0]
    what = f"; and its {', '.join(f'{group}.{k}={v}' for k, v in wanted.items())} match no option" if wanted else ""
    raise StoredConfigError(f"{source}: {group}.name={name!r} is not a {group} option of this project "
                            f"(configs/{group}/: {', '.join(options(group))}){what}: a stored config "
                            "cannot choose code")


def stored_group(group: str, stored: Any, source: str) -> DictConfig:
    """One stored group: the project's option with the stored values over it."""
    if not isinstance(stored, Mapping):
        raise StoredConfigError(f"{source}: {group} must be a group of keys, got {type(stored).__name__}")
    values = values_only(dict(stored), source, group)
    if group not in CHOSEN_GROUPS:
        if directives(stored):
            key = next(iter(directives(stored)))
            raise StoredConfigError(f"{source}: {group}.{key} is not allowed: a stored config cannot choose code")
        # A key the group gained after the file was written (trainer.postprocess) takes today's
        # default, as a chosen group's keys take their option's: the file's values go over it.
        default = options(group).get("default") if (CONFIG_DIR / group).is_dir() else None
        return OmegaConf.merge(default, values) if default is not None else OmegaConf.create(values)
    option = options(group)[choose_option(group, stored, source)]
    try:
        merged = OmegaConf.merge(option, values)
    except Exception as err:  # noqa: BLE001 - OmegaConf's validation errors: a value of the wrong kind
        raise StoredConfigError(f"{source}: {group} does not fit configs/{group}/ ({err})") from None
    return derived_again(group, option, merged)


def references(interpolation: str) -> set[str]:
    """The config keys an interpolation reads: `${oc.select:data.videos,null}` -> {data.videos}
    (a resolver's name is followed by `:`, a key by `}` or `,`)."""
    return set(re.findall(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?=\s*[,}])", interpolation))


def derived_again(group: str, option: DictConfig, merged: DictConfig) -> DictConfig:
    """`merged` with the option's own interpolations back where the stored value is what they give.

    A stored config is saved resolved: `data.splits.test_fraction: 0.2` is written as a number,
    although data=custom derives it from `data.test_fraction`. Kept as a number, a later
    `data.test_fraction=0.3` (eval.py ckpt=<run> ...) would change nothing. So a key the option
    derives from keys of the same group is derived again, where that gives the stored value; a
    value the run set by hand (it differs) or one derived from another group (`${paths.data_dir}`,
    this machine's) stays as stored. The interpolations are the project's own, never the file's."""
    context = OmegaConf.create({group: merged})
    kept = interpolations(OmegaConf.to_container(merged, resolve=False))  # keys the file did not set
    for path, interpolation in interpolations(OmegaConf.to_container(option, resolve=False)).items():
        key = f"{group}.{path}"
        if path in kept or not all(ref.split(".")[0] == group for ref in references(interpolation)):
            continue
        stored = OmegaConf.select(context, key, throw_on_resolution_failure=False)
        OmegaConf.update(context, key, interpolation, merge=False)
        try:
            same = OmegaConf.select(context, key, throw_on_resolution_failure=True) == stored
        except Exception:  # noqa: BLE001 - it cannot be resolved from this group alone
            same = False
        if not same:
            OmegaConf.update(context, key, stored, merge=False)
    return context[group]


def interpolations(node: Any, prefix: str = "") -> dict[str, str]:
    """{key path: interpolation} of every `${...}` string value under `node` (a plain container)."""
    found = {}
    if isinstance(node, Mapping):
        for k, v in node.items():
            found.update(interpolations(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(node, str) and "${" in node:
        found[prefix] = node
    return found


def parent_of(raw: dict, key: str) -> tuple[dict | None, str]:
    """(the dict that holds dotted `key` in `raw`, or None where a level is missing; the key's leaf)."""
    *parents, leaf = key.split(".")
    node = raw
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), leaf


def drop_retired(raw: dict) -> dict:
    for key in RETIRED_KEYS:
        node, leaf = parent_of(raw, key)
        if node is not None:
            node.pop(leaf, None)
    return raw


def rename_old_targets(node: Any) -> Any:
    """`node` with every `_target_` an older layout named by a class's former name renamed (RENAMED_TARGETS)."""
    if isinstance(node, dict):
        return {k: RENAMED_TARGETS.get(v, v) if k == "_target_" and isinstance(v, str) else rename_old_targets(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [rename_old_targets(v) for v in node]
    return node


def rename_old_keys(raw: dict, source: str) -> dict:
    """Keys an older layout stored under another name, moved to today's (RENAMED_KEYS)."""
    for key, new in RENAMED_KEYS.items():
        node, leaf = parent_of(raw, key)
        if node is None or leaf not in node:
            continue
        if new in node:
            raise StoredConfigError(f"{source}: {key} is the older name of {key.rsplit('.', 1)[0]}.{new}; "
                                    "the stored config holds both")
        node[new] = node.pop(leaf)
    return raw


def stored_config(raw: Any, source: str, groups: tuple[str, ...] = STORED_GROUPS) -> DictConfig:
    """The stored config of `source` (a description naming the file) rebuilt from the project's config
    groups and checked by their schemas. Groups outside `groups` are not read."""
    if not isinstance(raw, Mapping):
        raise StoredConfigError(f"{source}: the stored config must be a JSON object, got {type(raw).__name__}")
    raw = drop_retired(OmegaConf.to_container(raw) if isinstance(raw, DictConfig) else copy.deepcopy(dict(raw)))
    raw = rename_old_targets(rename_old_keys(raw, source))
    missing = [g for g in groups if g not in raw]
    if missing:
        raise StoredConfigError(f"{source}: the stored config has no {', '.join(missing)} group")
    cfg = OmegaConf.create({g: stored_group(g, raw[g], source) for g in groups})
    for g in groups:
        try:
            check_group(cfg[g], GROUPS[g], g)
        except ConfigError as err:
            raise StoredConfigError(f"{source}: {err}") from None
    return cfg
