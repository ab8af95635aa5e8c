"""The config layout says each thing once without changing what any run composes to.

tests/data/composed_configs.json was written by scripts/config_snapshot.py from the layout before
the VoP variants extended vop.yaml and before configs/method_data/ became `data.lr_new`; every
method x dataset pair must still compose to exactly that. A deliberate value change: regenerate
it (`python scripts/config_snapshot.py --out tests/data/composed_configs.json`) and review the diff.
"""
from __future__ import annotations

import json
import re

import pytest
import yaml
from omegaconf import OmegaConf

from tests.helpers import REPO_ROOT, compose_cfg
from vop.config.check import check_config
from vop.config.files import load_with_defaults, option_files
from vop.config.stored import RENAMED_KEYS, RENAMED_TARGETS, stored_config
from vop.engine.checkpoint_config import merge_checkpoint_config
from vop.tools import config_snapshot


SNAPSHOT = REPO_ROOT / "tests" / "data" / "composed_configs.json"
VARIANTS = ("vop_p", "vop_c", "vop_f", "vop_fp", "vop_fc")


# Keys a newer layout adds, allowed only where the snapshot lacks them (a snapshot regenerated from
# this layout has them): the dataset's new-parameter rate, which replaced configs/method_data/ (any
# value), and the keys data/_base.yaml gave every dataset, which must hold the value the code used
# when a dataset file did not set them (`cfg.data.get("hflip", 0.5)`, `data.get("shuffle_group", 1)`),
# and X-Pool's rate, which method/_base.yaml names once (the 3e-5 every method file wrote); the
# post-processing keys, whose default (none) is what every run did before them; DiDeMo's and ActivityNet's
# `queries`, whose default (paragraphs) is the protocol every run used before moment queries.
ANY = object()
NEW_KEYS = {"data.lr_new": ANY, "data.hflip": 0.5, "data.shuffle_group": 1, "method.lr_xpool": 3.0e-5,
            "trainer.postprocess": [], "trainer.bank_captions": ANY, "data.splits.queries": "paragraphs"}
# Keys a newer layout removes, allowed only where they repeated another key: VoP's tuner took its
# name from `method.name` (the method is now named once).
RETIRED_KEYS = {"method.tuner.name": "method.name"}
# Keys and `_target_`s renamed since the snapshot, by the tables that read older checkpoints and
# galleries (vop/config/stored.py): the snapshot's values are compared under today's names.
RENAMED = {old: f"{old.rsplit('.', 1)[0]}.{new}" for old, new in RENAMED_KEYS.items()}


def today(pair: dict) -> dict:
    """A snapshot pair's flattened config under today's key and class names."""
    return {RENAMED.get(key, key): RENAMED_TARGETS.get(value, value) if key.endswith("_target_") else value
            for key, value in pair.items()}


def differences(want: dict[str, dict], have: dict[str, dict]) -> list[str]:
    out = []
    for pair in sorted(want):
        old = today(want[pair])
        for key in sorted(set(old) | set(have.get(pair, {}))):
            if key in NEW_KEYS and key not in old and NEW_KEYS[key] in (ANY, have.get(pair, {}).get(key)):
                continue
            if key in RETIRED_KEYS and key not in have.get(pair, {}) and old[key] == old.get(RETIRED_KEYS[key]):
                continue
            a, b = old.get(key, "<absent>"), have.get(pair, {}).get(key, "<absent>")
            if a != b:
                out.append(f"{pair}: {key}: snapshot {a}, now {b}")
    return out


@pytest.fixture(scope="module")
def have() -> dict[str, dict]:
    return config_snapshot.composed_now()


def test_every_method_and_dataset_composes_as_in_the_snapshot(have) -> None:
    want = config_snapshot.expand(json.loads(SNAPSHOT.read_text()))
    assert sorted(have) == sorted(want), "the method or data options changed: regenerate the snapshot"
    diffs = differences(want, have)
    assert not diffs, "\n".join(diffs[:20]) + f"\n({len(diffs)} differences)"
    # The rates the old method_data files set are there (the comparison above covers them; said twice
    # because they are the point of the change).
    assert have["vop lsmdc"]["method.lr_new"] == have["bias msrvtt7k"]["method.lr"] == 1.0e-5
    assert have["vop msrvtt9k"]["method.lr_new"] == 3.0e-5 and have["full lsmdc"]["method.lr_new"] == 3.0e-5


def test_a_changed_value_is_a_difference() -> None:
    want = config_snapshot.expand(json.loads(SNAPSHOT.read_text()))
    have = {pair: today(cfg) for pair, cfg in want.items()}  # the snapshot as today names it
    have["vop lsmdc"]["method.lr_new"] = 3.0e-5  # what vop on LSMDC would get without its dataset's rate
    assert differences(want, have) == ["vop lsmdc: method.lr_new: snapshot 1e-05, now 3e-05"]


def test_a_renamed_key_is_compared_under_its_new_name() -> None:
    want = config_snapshot.expand(json.loads(SNAPSHOT.read_text()))
    pair = "vop_f msrvtt9k"
    assert want[pair]["method.tuner.split"] == 0.5  # the snapshot's name
    have = {pair: today(want[pair])}
    assert differences({pair: want[pair]}, have) == []
    have[pair]["method.tuner.inter_from"] = 0.25
    assert differences({pair: want[pair]}, have) == [f"{pair}: method.tuner.inter_from: snapshot 0.5, now 0.25"]
    assert want[pair]["method.tuner._target_"] == "vop.methods.vop.VoP"  # a renamed class likewise
    have[pair]["method.tuner._target_"] = "vop.methods.vop.VoP"
    assert differences({pair: want[pair]}, have)[0] == \
        f"{pair}: method.tuner._target_: snapshot vop.methods.vop.VoPTuning, now vop.methods.vop.VoP"


def test_a_new_key_with_another_value_than_the_code_default_is_a_difference() -> None:
    want = config_snapshot.expand(json.loads(SNAPSHOT.read_text()))
    pair = "bias msrvtt9k"
    have = {pair: {**want[pair], "data.hflip": 0.5}}
    assert differences({pair: want[pair]}, have) == []
    have[pair]["data.hflip"] = 0.0
    assert differences({pair: want[pair]}, have) == [f"{pair}: data.hflip: snapshot <absent>, now 0.0"]


def test_every_dataset_extends_the_data_base_and_names_only_what_differs(have) -> None:
    """data/_base.yaml holds every shared key once; a dataset file sets a shared key only to change it."""
    base = yaml.safe_load((REPO_ROOT / "configs" / "data" / "_base.yaml").read_text())
    for path in sorted((REPO_ROOT / "configs" / "data").glob("*.yaml")):
        if path.stem == "_base":
            continue
        cfg = yaml.safe_load(path.read_text())
        assert cfg["defaults"][-1] == "_self_" and cfg["defaults"][0] in ("_base", "synthetic"), path.name
        for key, value in cfg.items():
            if key in base and key not in ("name", "root", "splits"):
                assert value != base[key], f"{path.name} repeats {key}={value} from _base.yaml"
    for pair, flat in have.items():
        assert {f"data.{k}" for k in base if k != "splits"} <= set(flat), pair  # splits: flattened to splits.*


def leaves(node) -> list:
    """Every value of a YAML tree (dicts and lists walked)."""
    if isinstance(node, dict):
        return [v for child in node.values() for v in leaves(child)]
    if isinstance(node, list):
        return [v for child in node for v in leaves(child)]
    return [node]


def test_every_method_extends_the_method_base_and_names_only_what_differs(have) -> None:
    """method/_base.yaml holds every shared key once (X-Pool's rate among them); a method file sets a
    shared key only to change it, and the rate's number is written nowhere else."""
    base = yaml.safe_load((REPO_ROOT / "configs" / "method" / "_base.yaml").read_text())
    for path in option_files(REPO_ROOT / "configs" / "method"):
        cfg = yaml.safe_load(path.read_text())
        assert cfg["defaults"][-1] == "_self_" and cfg["defaults"][0] in ("_base", "vop"), path.name
        for key, value in cfg.items():
            if key in base and key not in ("name", "tuner"):
                assert value != base[key], f"{path.name} repeats {key}={value} from _base.yaml"
        assert not [v for v in leaves(cfg) if v == 3.0e-5 or "3.0e-5" in str(v) or "3e-5" in str(v)], path.name
    for pair, flat in have.items():
        assert {f"method.{k}" for k in base if k != "tuner"} <= set(flat), pair  # tuner: flattened to tuner.*
        assert flat["method.lr_xpool"] == 3.0e-5, pair


def test_vop_variants_name_only_what_differs() -> None:
    base = yaml.safe_load((REPO_ROOT / "configs" / "method" / "vop.yaml").read_text())
    for name in VARIANTS:
        variant = yaml.safe_load((REPO_ROOT / "configs" / "method" / f"{name}.yaml").read_text())
        assert variant["defaults"] == ["vop", "_self_"], name
        for key, value in variant.get("tuner", {}).items():
            assert base["tuner"].get(key) != value, f"{name}.yaml repeats tuner.{key}={value} from vop.yaml"
        assert set(variant) - {"defaults", "name", "tuner"} == set(), name


def test_no_method_data_folder() -> None:
    assert not (REPO_ROOT / "configs" / "method_data").exists()
    rates = {p.stem: yaml.safe_load(p.read_text()).get("lr_new") for p in (REPO_ROOT / "configs" / "data").glob("*.yaml")
             if p.stem != "_base"}
    assert rates["msrvtt7k"] == rates["lsmdc"] == 1.0e-5 and rates["msrvtt9k"] is None


def test_a_method_is_named_once_by_its_file() -> None:
    # `name:` of configs/method/<stem>.yaml is <stem>; no tuner class or tuner key repeats it.
    for path in option_files(REPO_ROOT / "configs" / "method"):
        text = yaml.safe_load(path.read_text())
        assert text["name"] == path.stem, path
        assert "name" not in (text.get("tuner") or {}), path
    for path in sorted((REPO_ROOT / "vop" / "methods").glob("*.py")):
        assert "self.name" not in path.read_text() and "\n    name = " not in path.read_text(), path


def test_every_method_class_is_named_what_it_tunes() -> None:
    # One pattern, <What>Tuning (BiasTuning, VoPTuning, ZeroShotTuning, ...), for every method class.
    for path in option_files(REPO_ROOT / "configs" / "method"):
        target = load_with_defaults(path).tuner._target_
        assert re.fullmatch(r"vop\.methods\.\w+\.[A-Z]\w*Tuning", target), f"{path.name}: {target}"


def test_a_stored_config_from_an_older_layout_drops_its_retired_keys(tmp_path) -> None:
    cfg = compose_cfg("eval", ["method=vop", "model=clip_tiny"], tmp_path)
    raw = OmegaConf.to_container(cfg, resolve=True)
    raw["method"]["tuner"]["name"] = "vop"  # what checkpoints written before the method was named once hold
    saved = stored_config(raw, "checkpoint old.safetensors")
    assert "name" not in saved.method.tuner and saved.method.name == "vop"
    merged = merge_checkpoint_config(cfg, saved, [], tmp_path / "trainable.safetensors")
    check_config(merged)
