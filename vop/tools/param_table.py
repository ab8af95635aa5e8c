"""Trainable-parameter counts of every method config on one model (scripts/param_table.py)."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable

from hydra.utils import instantiate
from omegaconf import OmegaConf

from vop.methods.base import ParameterCount, TuningMethod, count_parameters
from vop.models.clip import CLIPVideoModel
from vop.paper import OTHER_PAPER_TRAINABLE, PAPER_TRAINABLE_PERCENT

# Extra rows: a method config with some knobs changed (BitFit without LayerNorm biases).
VARIANTS = {"bias": {"layernorm": False}, "dgl": {"latent": "linear"}}


@dataclass(frozen=True)
class Row:
    method: str
    trainable: int
    effective: int        # trainable values that can reach the output for captions under 64 tokens
    total: int
    percent: float        # of the model with the method's additions
    percent_clip: float   # of CLIP alone
    paper_percent: float | None
    paper_trainable: int | None = None  # a method from another paper: the count its authors state


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
            paper_count, paper_percent = OTHER_PAPER_TRAINABLE.get(name, (None, PAPER_TRAINABLE_PERCENT.get(label)))
            rows.append(Row(label, count.trainable, count.trainable - inert, count.total, round(count.percent, 4),
                            round(100.0 * count.trainable / clip_total, 4), paper_percent, paper_count))
    return rows


def to_markdown(rows: list[Row], model: str) -> str:
    lines = [f"| method ({model}) | trainable | effective¹ | total | % | % of CLIP | paper % (B/32) | paper count² |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        paper = "" if r.paper_percent is None else f"{r.paper_percent:.2f}"
        stated = "" if r.paper_trainable is None else f"{r.paper_trainable / 1e6:.2f}M"
        lines.append(f"| {r.method} | {r.trainable:,} | {r.effective:,} | {r.total:,} | {r.percent:.2f} | "
                     f"{r.percent_clip:.2f} | {paper} | {stated} |")
    lines.append("\n¹ effective: trainable values that can reach the output for captions with the end-of-text "
                 "token before index 64. VoP's text suffix prompts sit before the last of the 69 caption slots "
                 "(released layout); under the causal mask they reach the read-out only for captions of 64+ "
                 "tokens (released read-out) or filling all 69 slots (eot read-out). DGL's text suffix prompts follow "
                 "every caption slot and never reach it: with latent=linear their map is inert.")
    lines.append("² a method from another paper: the trainable count its authors state. DGL: \"0.83 MB\" (0.83M "
                 "values; their README ties it to the linear latent space) and \"0.67%\"; the released MSR-VTT "
                 "B/32 checkpoint uses the transformer latent space.")
    return "\n".join(lines)


def to_records(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
