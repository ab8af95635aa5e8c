"""Trainable-parameter counts of every method config on one model (scripts/param_table.py)."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from hydra.utils import instantiate
from omegaconf import OmegaConf

from vop.methods.base import ParameterCount, TuningMethod, count_parameters
from vop.models.clip import CLIPVideoModel

# The VoP paper's figure 1 (MSR-VTT-9k, ViT-B/32): trainable share in percent.
PAPER_PERCENT = {"full": 100.0, "bias": 0.10, "proj": 0.54, "partial": 6.41, "adapter_attn": 1.65,
                 "adapter_ffn": 1.65, "vop": 0.10, "vop_f": 0.10, "vop_fp": 0.38, "vop_fc": 11.78}

# Extra rows: a method config with some knobs changed (BitFit without LayerNorm biases).
VARIANTS = {"bias": {"layernorm": False}}


@dataclass(frozen=True)
class Row:
    method: str
    trainable: int
    effective: int        # trainable values that can reach the output for captions under 64 tokens
    total: int
    percent: float        # of the model with the method's additions
    percent_clip: float   # of CLIP alone
    paper_percent: float | None


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


def count_method(model: CLIPVideoModel, tuner_cfg) -> tuple[ParameterCount, int, int]:
    """(count, inert values, CLIP's own total) of one method config."""
    model = copy.deepcopy(model)  # methods change the model; a copy is much faster than a new init
    clip_total = count_parameters(model).total
    method: TuningMethod = instantiate(tuner_cfg)
    count = method.apply(model)
    return count, method.inert_parameters(model), clip_total


def table(build: Callable[[], CLIPVideoModel], configs: dict[str, object]) -> list[Row]:
    model, rows = build(), []
    for name, cfg in configs.items():
        variants = [(name, cfg.tuner)]
        if name in VARIANTS:
            changed = OmegaConf.merge(cfg.tuner, VARIANTS[name])
            label = ", ".join(f"{k}={str(v).lower()}" for k, v in VARIANTS[name].items())
            variants.append((f"{name} ({label})", changed))
        for label, tuner in variants:
            count, inert, clip_total = count_method(model, tuner)
            rows.append(Row(label, count.trainable, count.trainable - inert, count.total, round(count.percent, 4),
                            round(100.0 * count.trainable / clip_total, 4), PAPER_PERCENT.get(label)))
    return rows


def to_markdown(rows: list[Row], model: str) -> str:
    lines = [f"| method ({model}) | trainable | effective¹ | total | % | % of CLIP | paper % (B/32) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        paper = "" if r.paper_percent is None else f"{r.paper_percent:.2f}"
        lines.append(f"| {r.method} | {r.trainable:,} | {r.effective:,} | {r.total:,} | {r.percent:.2f} | "
                     f"{r.percent_clip:.2f} | {paper} |")
    lines.append("\n¹ effective: trainable values that can reach the output for captions with the end-of-text "
                 "token before index 64. VoP's text suffix prompts sit before the last of the 69 caption slots "
                 "(released layout); under the causal mask they reach the read-out only for captions of 64+ "
                 "tokens (released read-out) or filling all 69 slots (eot read-out).")
    return "\n".join(lines)


def to_records(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
