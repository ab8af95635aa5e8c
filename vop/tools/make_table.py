"""Runs -> the paper's results table (markdown and CSV), one block per (dataset, model).

A run is a directory holding `config.yaml` and `metrics.json` (what train.py and eval.py write);
a Hydra multirun folder is searched for such directories. Runs of the same (data, model, method)
are averaged (e.g. seeds) and counted in the `runs` column; with two or more runs a cell reads
`mean ± standard error` (std over runs / sqrt(runs)), and differences within two standard errors
are marked (a direction accuracy's SE also holds the probe's own sampling error over its pairs,
`probe/<key>@se`): in each column the best row and every row within 2 SE of it are bold, a gain vs
full within 2 SE of zero and a direction accuracy within 2 SE of 50 (blind) get a trailing `~`.
Runs holding the direction probe's metrics (`probe/*`, scripts/synthetic_benchmark.py) get a
second table per block.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from vop.errors import MissingFileError
from vop.paper import PAPER_GAIN, PAPER_TRAINABLE_PERCENT
from vop.tools.leaderboard import write_leaderboard
from vop.tools.table_format import METRICS, fmt as _fmt, fmt_se as _fmt_se, method_order as _order
from vop.tools.table_settings import differing, note, run_settings

RETRIEVAL = tuple(f"{d}_{m}" for d in ("t2v", "v2t") for m in METRICS)
# The direction probe (vop/metrics/direction.py), read from `probe/<key>` when a run has them.
PROBE = {"t2v_R@1": "probe t2v R@1", "t2v_direction_acc": "direction t2v %", "v2t_direction_acc": "direction v2t %",
         "t2v_static_acc": "static t2v %", "v2t_static_acc": "static v2t %"}
LOWER_IS_BETTER = {"t2v_MdR", "t2v_MnR", "v2t_MdR", "v2t_MnR"}
VALUES = (*RETRIEVAL, *(f"probe_{k}" for k in PROBE), "R@1_gain_vs_full")
COLUMNS = ("data", "model", "method", "trainable_%", *RETRIEVAL, "R@1_gain_vs_full", "paper_R@1_gain_vs_full",
           "paper_trainable_%", "runs", *(f"probe_{k}" for k in PROBE), *(f"{k}_se" for k in VALUES))


@dataclass(frozen=True)
class Run:
    path: Path
    data: str
    model: str
    method: str
    metrics: dict[str, float]  # t2v_R@1 ... v2t_MnR (and dsl/t2v_R@1 ... post-processed), without the split prefix
    trainable_pct: float | None
    trainable: int | None = None


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
    metrics.update({f"probe_{k}{s}": float(saved[f"probe/{k}{s}"]) for k in PROBE for s in ("", "@se")
                    if f"probe/{k}{s}" in saved})
    metrics.update({key[len(split) + 1:]: float(value) for key, value in saved.items()  # test/dsl/t2v_R@1
                    if key.count("/") == 2 and key.startswith(f"{split}/") and key.rsplit("/", 1)[1] in RETRIEVAL})
    total = saved.get("total_params")
    pct = 100.0 * saved["trainable_params"] / total if total else None
    return Run(path, cfg.data.name, cfg.model.name, cfg.method.name, metrics, pct, saved.get("trainable_params"))


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _se(values: list[float]) -> float | None:
    """Standard error of the mean over runs (sample std / sqrt(n)); None for fewer than 2 runs."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def _combined_se(over_runs: float | None, within: list[float]) -> float | None:
    """The spread over runs plus a run's own sampling error (`@se`, e.g. the direction probe's over its
    pairs, which every seed shares and averaging over seeds does not shrink): sqrt(a^2 + mean(w^2))."""
    if not within:
        return over_runs
    return math.sqrt((over_runs or 0.0) ** 2 + sum(w * w for w in within) / len(within))


def within_2se(a: float, b: float, se_a: float | None, se_b: float | None) -> bool:
    """|a - b| <= 2 SE of the difference (independent runs); without any SE only equal values are."""
    if se_a is None and se_b is None:
        return a == b
    return abs(a - b) <= 2 * math.hypot(se_a or 0.0, se_b or 0.0)


def table_rows(runs: list[Run]) -> list[dict]:
    """One row per (data, model, method), runs averaged; R@1 gain vs the group's `full` row."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.data, run.model, run.method), []).append(run)
    rows = []
    for (data, model, method), members in sorted(groups.items(), key=lambda kv: (kv[0][:2], _order(kv[0][2]))):
        row = {"data": data, "model": model, "method": method, "runs": len(members),
               "paths": [m.path for m in members], "trainable": _mean([m.trainable for m in members]),
               "trainable_%": _mean([m.trainable_pct for m in members]),
               "paper_R@1_gain_vs_full": PAPER_GAIN.get(method), "paper_trainable_%": PAPER_TRAINABLE_PERCENT.get(method)}
        for key in dict.fromkeys(k for m in members for k in m.metrics if not k.endswith("@se")):
            values = [m.metrics[key] for m in members if key in m.metrics]
            row[key], row[f"{key}_se"] = _mean(values), _combined_se(_se(values), [
                m.metrics[f"{key}@se"] for m in members if f"{key}@se" in m.metrics])
        rows.append(row)
    for row in rows:
        full = next((r for r in rows if (r["data"], r["model"], r["method"]) == (row["data"], row["model"], "full")),
                    None)
        row["R@1_gain_vs_full"] = row["t2v_R@1"] - full["t2v_R@1"] if full else None
        row["R@1_gain_vs_full_se"] = (math.hypot(row["t2v_R@1_se"] or 0.0, full["t2v_R@1_se"] or 0.0) or None
                                      if full and row is not full else None)
    return rows


def _best_marks(block: list[dict], key: str) -> set[int]:
    """Rows (positions in `block`) to bold in column `key`: the best, and those within 2 SE of it."""
    known = [(i, r) for i, r in enumerate(block) if r.get(key) is not None]
    if not any(r.get(f"{key}_se") is not None for _, r in known):
        return set()  # single runs: no error bars, nothing to mark
    sign = -1.0 if key in LOWER_IS_BETTER else 1.0
    best = max((r for _, r in known), key=lambda r: sign * r[key])
    return {i for i, r in known if r is best or within_2se(r[key], best[key], r.get(f"{key}_se"), best.get(f"{key}_se"))}


def _cell(row: dict, key: str, bold: bool = False, signed: bool = False, null: float | None = None) -> str:
    """`mean ± se`, bold when marked; a trailing `~` when within 2 SE of `null` (no effect)."""
    value, se = row.get(key), row.get(f"{key}_se")
    if value is None:
        return "-"
    text = _fmt(value, signed) + (f" ± {_fmt_se(se)}" if se is not None else "")
    text = f"**{text}**" if bold else text
    return text + (" ~" if null is not None and within_2se(value, null, se, None) else "")


def _table(block: list[dict], head: list[str], keys: list[str], extra) -> list[str]:
    """Markdown lines: header, rule, one row per method; `extra(row)` adds the last cells."""
    marks = {k: _best_marks(block, k) for k in keys}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(block):
        cells = [r["method"], *(_cell(r, k, i in marks[k], null=50.0 if "direction" in k else None) for k in keys)]
        lines.append("| " + " | ".join(cells + extra(r)) + " |")
    return lines


def to_markdown(rows: list[dict]) -> str:
    """The paper's layout: per (data, model) a table with t2v and v2t metrics per method (and the probe's)."""
    head = (["method", "trainable %", *(f"t2v {m}" for m in METRICS), *(f"v2t {m}" for m in METRICS),
             "R@1 gain vs full", "paper: gain (fig. 1)", "runs"])
    blocks = []
    for key in dict.fromkeys((r["data"], r["model"]) for r in rows):
        block = [r for r in rows if (r["data"], r["model"]) == key]
        lines = [f"**data={key[0]}, model={key[1]}**", ""]
        lines += _table(block, head, ["trainable_%", *RETRIEVAL], lambda r: [
            _cell(r, "R@1_gain_vs_full", signed=True, null=0.0 if r["method"] != "full" else None),
            _fmt(r["paper_R@1_gain_vs_full"], signed=True), str(r["runs"])])
        if any(r.get("probe_t2v_direction_acc") is not None for r in block):
            lines += ["", f"**direction probe: data={key[0]}, model={key[1]}**", ""]
            lines += _table(block, ["method", *PROBE.values(), "runs"], [f"probe_{k}" for k in PROBE],
                            lambda r: [str(r["runs"])])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def settings_notes(runs: list[Run]) -> str:
    """Per (data, model) block, the settings its rows differ in (vop/tools/table_settings.py), as text."""
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
    """Markdown of the runs under `paths`; with `out`, also writes `<out>.md`, `<out>.csv` and the leaderboard
    page `<out>.html` (vop/tools/leaderboard.py: measured rows beside published ones)."""
    runs = [read_run(p) for p in find_runs(paths)]
    rows = table_rows(runs)
    markdown = to_markdown(rows) + settings_notes(runs)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(markdown)
        write_csv(rows, out.with_suffix(".csv"))
        write_leaderboard(rows, out.with_suffix(".html"))
    return markdown
