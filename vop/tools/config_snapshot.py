"""Write the composed config of every method x dataset pair (train.py), resolved, as JSON.

tests/library/config/test_config_layout.py compares today's composition against tests/data/composed_configs.json,
so a change to the config layout that changes what any pair composes to fails. After a deliberate
change to config values (a new key, a new default), regenerate the snapshot and review its diff:

    python scripts/config_snapshot.py --out tests/data/composed_configs.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vop import ROOT
from vop.config.files import option_names
from vop.config.resolvers import register_resolvers
from vop.errors import ArgumentParser

CONFIGS = ROOT / "configs"
# Machine-dependent values, fixed so the snapshot is the same everywhere.
MISSING = "<absent>"  # a key this pair does not have
FIXED = ["paths.root_dir=/vop", "paths.output_dir=/vop/outputs/run"]
FIXED_CPUS = 16  # data.num_workers follows the machine's cores (vop/data/workers.py): composed as on 16


def options(group: str) -> list[str]:
    return option_names(CONFIGS / group)


def composed(method: str, data: str) -> dict:
    """Inside an initialize_config_dir(CONFIGS) context."""
    cfg = compose(config_name="train", overrides=[f"method={method}", f"data={data}", *FIXED])
    return OmegaConf.to_container(cfg, resolve=True)


def compose_all() -> dict[tuple[str, str], dict]:
    """{(method, data): flattened resolved config} for every pair (one Hydra initialisation)."""
    register_resolvers()  # the pairs are resolved: ${vop.workers:...}, data=custom's ${vop.basename:...}
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"), \
            mock.patch("vop.data.workers.usable_cpus", return_value=FIXED_CPUS), \
            mock.patch.dict("os.environ", {"LOCAL_WORLD_SIZE": "1"}):
        return {(m, d): flat(composed(m, d)) for m in options("method") for d in options("data")}


def flat(tree, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists are values."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    out = {}
    for key, value in tree.items():
        out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def snapshot() -> dict:
    """Every pair's flattened config, factored so the file stays small and its diffs readable:
    "common" (the same in every pair), "method" (set by the method alone), "data" (by the dataset
    alone) and "pairs" (what depends on both)."""
    methods, datas = options("method"), options("data")
    full = compose_all()
    keys = sorted(set().union(*full.values()))
    value = {k: {md: cfg.get(k, MISSING) for md, cfg in full.items()} for k in keys}

    def same(k: str, cells: list[tuple[str, str]]) -> bool:
        return len({json.dumps(value[k][c], sort_keys=True) for c in cells}) == 1

    snap: dict = {"common": {}, "method": {m: {} for m in methods}, "data": {d: {} for d in datas},
                  "pairs": {f"{m} {d}": {} for m in methods for d in datas}}
    for k in keys:
        if same(k, list(full)):
            snap["common"][k] = value[k][methods[0], datas[0]]
        elif all(same(k, [(m, d) for d in datas]) for m in methods):
            for m in methods:
                snap["method"][m][k] = value[k][m, datas[0]]
        elif all(same(k, [(m, d) for m in methods]) for d in datas):
            for d in datas:
                snap["data"][d][k] = value[k][methods[0], d]
        else:
            for (m, d), v in value[k].items():
                snap["pairs"][f"{m} {d}"][k] = v
    return snap


def expand(snap: dict) -> dict[str, dict]:
    """The snapshot back to {"<method> <data>": every flattened key of that pair}."""
    out = {}
    for pair, rest in snap["pairs"].items():
        m, d = pair.split(" ")
        merged = {**snap["common"], **snap["method"][m], **snap["data"][d], **rest}
        out[pair] = {k: v for k, v in merged.items() if v != MISSING}
    return out


def composed_now() -> dict[str, dict]:
    """Today's composition in the same form as expand()."""
    return {f"{m} {d}": cfg for (m, d), cfg in compose_all().items()}


def main() -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write here (default: stdout)")
    args = parser.parse_args()
    text = json.dumps(snapshot(), indent=0, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
