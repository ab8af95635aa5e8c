"""Runs -> the paper's results table (markdown and CSV), one block per (dataset, model).

A run is a directory holding `config.yaml` and `metrics.json` (what train.py and eval.py write);
a Hydra multirun folder is searched for such directories. Runs of the same (data, model, method)
are averaged (e.g. seeds) and counted in the `runs` column.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from vop.errors import MissingFileError
from vop.table_settings import differing, note, run_settings

# Paper figure 1 (MSR-VTT-9k): text->video R@1 gain vs full fine-tuning, and trainable %.
PAPER_GAIN = {"full": 0.0, "bias": -2.0, "proj": -4.6, "partial": -1.9, "adapter_attn": -4.1,
              "adapter_ffn": -3.5, "vop": -2.1, "vop_f": 0.9, "vop_fp": 1.8, "vop_fc": 2.9}
PAPER_TRAINABLE = {"full": 100.0, "bias": 0.10, "proj": 0.54, "partial": 6.41, "adapter_attn": 1.65,
                   "adapter_ffn": 1.65, "vop": 0.10, "vop_f": 0.10, "vop_fp": 0.38, "vop_fc": 11.78}
# The paper's row order; methods not listed follow alphabetically.
ORDER = ("zeroshot", "full", "bias", "proj", "partial", "adapter_attn", "adapter_ffn",
         "vop", "vop_p", "vop_c", "vop_f", "vop_fp", "vop_fc")
METRICS = ("R@1", "R@5", "R@10", "MdR", "MnR")
COLUMNS = ("data", "model", "method", "trainable_%",
           *(f"{d}_{m}" for d in ("t2v", "v2t") for m in METRICS),
           "R@1_gain_vs_full", "paper_R@1_gain_vs_full", "paper_trainable_%", "runs")


@dataclass(frozen=True)
class Run:
    path: Path
    data: str
    model: str
    method: str
    metrics: dict[str, float]  # t2v_R@1 ... v2t_MnR, without the split prefix
    trainable_pct: float | None


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories among `paths`: each one itself, or every run below it (a multirun folder)."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / "metrics.json").is_file():
            runs.append(path)
            continue
        found = sorted(p.parent for p in path.rglob("metrics.json")) if path.is_dir() else []
        if not found:
            raise MissingFileError(f"make_table: {path} is not a run directory (no metrics.json) and holds none")
        runs.extend(found)
    return runs


def read_run(path: Path) -> Run:
    if not (path / "config.yaml").is_file():
        raise MissingFileError(f"make_table: {path} has metrics.json but no config.yaml")
    cfg = OmegaConf.load(path / "config.yaml")
    saved = json.loads((path / "metrics.json").read_text())
    split = cfg.data.test_split
    missing = [f"{split}/{d}_{m}" for d in ("t2v", "v2t") for m in METRICS if f"{split}/{d}_{m}" not in saved]
    if missing:
        raise KeyError(f"make_table: {path / 'metrics.json'} lacks {missing}")
    metrics = {f"{d}_{m}": float(saved[f"{split}/{d}_{m}"]) for d in ("t2v", "v2t") for m in METRICS}
    total = saved.get("total_params")
    pct = 100.0 * saved["trainable_params"] / total if total else None
    return Run(path, cfg.data.name, cfg.model.name, cfg.method.name, metrics, pct)


def _order(method: str) -> tuple[int, str]:
    return (ORDER.index(method), "") if method in ORDER else (len(ORDER), method)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def table_rows(runs: list[Run]) -> list[dict]:
    """One row per (data, model, method), runs averaged; R@1 gain vs the group's `full` row."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.data, run.model, run.method), []).append(run)
    rows = []
    for (data, model, method), members in sorted(groups.items(), key=lambda kv: (kv[0][:2], _order(kv[0][2]))):
        row = {"data": data, "model": model, "method": method, "runs": len(members),
               "trainable_%": _mean([m.trainable_pct for m in members]),
               "paper_R@1_gain_vs_full": PAPER_GAIN.get(method), "paper_trainable_%": PAPER_TRAINABLE.get(method)}
        row.update({k: _mean([m.metrics[k] for m in members]) for k in members[0].metrics})
        rows.append(row)
    for row in rows:
        full = next((r for r in rows if (r["data"], r["model"], r["method"]) == (row["data"], row["model"], "full")),
                    None)
        row["R@1_gain_vs_full"] = row["t2v_R@1"] - full["t2v_R@1"] if full else None
    return rows


def _fmt(value, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.1f}" if signed else (f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}")
    return str(value)


def to_markdown(rows: list[dict]) -> str:
    """The paper's layout: per (data, model) a table with t2v and v2t metrics per method."""
    head = ("| method | trainable % | " + " | ".join(f"t2v {m}" for m in METRICS) + " | "
            + " | ".join(f"v2t {m}" for m in METRICS) + " | R@1 gain vs full | paper: gain (fig. 1) | runs |")
    rule = "|" + "---|" * (head.count("|") - 1)
    blocks = []
    for key in dict.fromkeys((r["data"], r["model"]) for r in rows):
        lines = [f"**data={key[0]}, model={key[1]}**", "", head, rule]
        for r in (r for r in rows if (r["data"], r["model"]) == key):
            cells = [r["method"], _fmt(r["trainable_%"])] + [_fmt(r[f"{d}_{m}"]) for d in ("t2v", "v2t") for m in METRICS]
            cells += [_fmt(r["R@1_gain_vs_full"], signed=True), _fmt(r["paper_R@1_gain_vs_full"], signed=True),
                      str(r["runs"])]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def settings_notes(runs: list[Run]) -> str:
    """Per (data, model) block, the settings its rows differ in (vop/table_settings.py), as text."""
    lines = []
    for key in dict.fromkeys((r.data, r.model) for r in runs):
        rows: dict[str, list[dict]] = {}
        for run in sorted((r for r in runs if (r.data, r.model) == key), key=lambda r: _order(r.method)):
            rows.setdefault(run.method, []).append(run_settings(run.path))
        text = note(f"data={key[0]}, model={key[1]}", differing(rows))
        lines += [text] if text else []
    return "".join(f"\n{line}\n" for line in lines)


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS} for r in rows)


def make_table(paths: list[str | Path], out: str | Path | None = None) -> str:
    """Markdown of the runs under `paths`; with `out`, also writes `<out>.md` and `<out>.csv`."""
    runs = [read_run(p) for p in find_runs(paths)]
    rows = table_rows(runs)
    markdown = to_markdown(rows) + settings_notes(runs)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(markdown)
        write_csv(rows, out.with_suffix(".csv"))
    return markdown
