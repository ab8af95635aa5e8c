"""Settings that differ between the rows of a results table: a 6-epoch run beside a 5-step smoke
run is not a comparison, so the table says so under the block (and make_table warns)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

# What changes a result besides the method (its learning rates differ by design, so they are left out).
CONFIG_KEYS = ("trainer.epochs", "trainer.max_steps_per_epoch", "data.batch_size", "data.num_frames",
               "data.frame_size", "data.max_text_len", "data.test_split", "model.net.name_or_path",
               "trainer.precision", "optim.weight_decay", "scheduler.warmup_ratio")
# Seeds are left out too: runs of one method with different seeds are what a row's error bar averages.
METRIC_KEYS = ("train/steps",)  # what the run did, from its metrics.json (absent where nothing trained)


def run_settings(path: Path) -> dict[str, object]:
    """The settings of one run directory (config.yaml and metrics.json)."""
    cfg = OmegaConf.load(path / "config.yaml")
    metrics = json.loads((path / "metrics.json").read_text())
    out = {key: OmegaConf.select(cfg, key, default=None) for key in CONFIG_KEYS}
    out.update({key: metrics.get(key) for key in METRIC_KEYS})
    return out


def _value(members: list[dict], key: str) -> str:
    values = sorted({json.dumps(m[key]) for m in members})
    return values[0] if len(values) == 1 else "/".join(values)  # runs averaged into one row may differ too


def differing(rows: dict[str, list[dict]]) -> dict[str, dict[str, str]]:
    """{setting: {row label: value}} for the settings whose value is not the same in every row.

    `rows`: row label (the method) -> the settings of each run averaged into that row."""
    keys = CONFIG_KEYS + METRIC_KEYS
    out = {}
    for key in keys:
        shown = {label: _value(members, key) for label, members in rows.items()
                 if key not in METRIC_KEYS or any(m[key] is not None for m in members)}  # zero-shot trained nothing
        if len(set(shown.values())) > 1 or any("/" in v for v in shown.values()):
            out[key] = shown
    return out


def note(block: str, diff: dict[str, dict[str, str]]) -> str:
    """A line for under the block's table ('' when the rows agree); also logged as a warning."""
    if not diff:
        return ""
    parts = ["; ".join([f"{key}: " + ", ".join(f"{label} {v}" for label, v in values.items())])
             for key, values in diff.items()]
    text = f"Settings differ between these rows ({block}), so they do not compare like for like: " + "; ".join(parts)
    log.warning(text)
    return text
