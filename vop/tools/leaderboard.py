"""The leaderboard page: one HTML file (no scripts, no CDN: it opens from disk) written by make_table.

Per (dataset, backbone) a table: every method with its trainable count and %, R@1/5/10, MdR and MnR both
ways as `mean ± standard error` over its runs (seeds), the text->video R@1 gain over full fine-tuning
in green (above) or red (below), raw and post-processed results in separate column groups, and
published rows (vop/paper.py REPORTED: marked "reported", with their source) beside the measured ones.
Each measured row links its run folders and their config.yaml.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from urllib.parse import quote

from vop.file_writes import write_whole
from vop.metrics.postprocess import POSTPROCESSING
from vop.paper import REPORTED
from vop.tools.table_format import METRICS, fmt as _fmt, fmt_se as _fmt_se, method_order as _order

DIRECTIONS = (("t2v", "text→video"), ("v2t", "video→text"))
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1f2328}
table{border-collapse:collapse;margin-bottom:2em;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td.method,td.kind,td.source{text-align:left}
tr.reported{background:#fff8c5;font-style:italic}
td.gain.pos{color:#1a7f37;font-weight:600}td.gain.neg{color:#cf222e;font-weight:600}
th.group-raw{background:#ddf4ff}th.group-post{background:#fbefff}
td.source{white-space:normal;max-width:30em;font-size:12px}
"""


def _cell(value, se=None, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = _fmt(float(value), signed)
    return text + (f" ± {_fmt_se(se)}" if se is not None else "")


def _pct(value) -> str:
    return "-" if value is None else f"{float(value):.2f}"  # 6.41 and 1.65 as the paper prints them


def _gain_td(value, se=None) -> str:
    kind = "" if value is None or value == 0 else (" pos" if value > 0 else " neg")
    return f'<td class="gain{kind}">{html.escape(_cell(value, se, signed=True))}</td>'


def _metric_tds(values: dict, prefix: str) -> list[str]:
    return [f'<td data-key="{prefix}{d}_{m}">{html.escape(_cell(values.get(f"{prefix}{d}_{m}"), values.get(f"{prefix}{d}_{m}_se")))}</td>'
            for d, _ in DIRECTIONS for m in METRICS]


def _link(target: Path, page: Path, text: str) -> str:
    href = quote(os.path.relpath(target.resolve(), page.parent.resolve()))
    return f'<a href="{href}">{html.escape(text)}</a>'


def _measured(row: dict, posts: list[str], page: Path) -> str:
    count = row.get("trainable")
    links = " ".join(f'{_link(p, page, f"run {i + 1}")} ({_link(p / "config.yaml", page, "config")})'
                     for i, p in enumerate(row["paths"]))
    tds = [f'<td class="method">{html.escape(row["method"])}</td>', '<td class="kind">measured</td>',
           f"<td>{'-' if count is None else f'{round(count):,}'}</td>",
           f'<td>{_pct(row.get("trainable_%"))}</td>', *_metric_tds(row, ""),
           _gain_td(row.get("R@1_gain_vs_full") if row["method"] != "full" else None, row.get("R@1_gain_vs_full_se")),
           *(td for post in posts for td in _metric_tds(row, f"{post}/")), f'<td>{row["runs"]}</td>',
           f'<td class="source">{links}</td>']
    return f'<tr class="measured" data-method="{html.escape(row["method"])}">{"".join(tds)}</tr>'


def _reported(rep: dict, posts: list[str]) -> str:
    raw = {} if rep["post"] else rep["metrics"]
    kind = "reported" + (f", post-processed ({rep['post']})" if rep["post"] else "")
    tds = [f'<td class="method">{html.escape(rep["method"])}</td>', f'<td class="kind">{html.escape(kind)}</td>',
           "<td>-</td>", f'<td>{_pct(rep["trainable_percent"])}</td>', *_metric_tds(raw, ""),
           _gain_td(rep["gain"]),
           *(td for post in posts for td in _metric_tds(rep["metrics"] if rep["post"] == post else {}, f"{post}/")),
           "<td>-</td>", f'<td class="source">{html.escape(rep["source"])}</td>']
    return f'<tr class="reported" data-method="{html.escape(rep["method"])}">{"".join(tds)}</tr>'


def _head(posts: list[str]) -> str:
    groups = ['<th rowspan="2">method</th><th rowspan="2">row</th><th colspan="2">trainable</th>']
    groups += [f'<th class="group-raw" colspan="5">raw: {name}</th>' for _, name in DIRECTIONS]
    groups.append('<th rowspan="2">t2v R@1 gain vs full (raw)</th>')
    groups += [f'<th class="group-post" colspan="5">{html.escape(post)}: {name}</th>' for post in posts
               for _, name in DIRECTIONS]
    groups.append('<th rowspan="2">runs</th><th rowspan="2">run folder / source</th>')
    subs = ["<th>count</th><th>%</th>"] + ["".join(f"<th>{m}</th>" for m in METRICS)] * (2 + 2 * len(posts))
    return f'<thead><tr>{"".join(groups)}</tr><tr>{"".join(subs)}</tr></thead>'


def _block(key: tuple[str, str], rows: list[dict], reported: list[dict], page: Path) -> str:
    used = {k.split("/", 1)[0] for r in rows for k in r if k.count("/") == 1 and not k.endswith("_se")}
    used |= {r["post"] for r in reported if r["post"]}
    posts = [p for p in POSTPROCESSING if p in used] + sorted(used - set(POSTPROCESSING))
    lines = []
    for method in sorted({r["method"] for r in rows} | {r["method"] for r in reported}, key=_order):
        lines += [_measured(r, posts, page) for r in rows if r["method"] == method]
        lines += [_reported(r, posts) for r in reported if r["method"] == method]  # beside the measured row
    title = html.escape(f"{key[0]} · {key[1]}")
    return (f'<section data-data="{html.escape(key[0])}" data-model="{html.escape(key[1])}"><h2>{title}</h2>'
            f'<table>{_head(posts)}<tbody>{"".join(lines)}</tbody></table></section>')


def leaderboard_html(rows: list[dict], page: Path, reported: tuple[dict, ...] = REPORTED) -> str:
    keys = list(dict.fromkeys([(r["data"], r["model"]) for r in rows] + [(r["data"], r["model"]) for r in reported]))
    blocks = [_block(k, [r for r in rows if (r["data"], r["model"]) == k],
                     [r for r in reported if (r["data"], r["model"]) == k], page) for k in keys]
    intro = ("<p>Measured rows: <code>mean ± standard error</code> over runs (seeds), linked to their run folders. "
             "Reported rows (shaded) are published numbers as their source prints them; \"-\" where it gives none. "
             "Raw columns are the model's own similarities; post-processed groups (DSL, QB-Norm: "
             "docs/protocol.md) use more than the query and compare only with each other.</p>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vop leaderboard</title>'
            f"<style>{STYLE}</style></head><body><h1>Leaderboard</h1>{intro}{''.join(blocks)}</body></html>\n")


def write_leaderboard(rows: list[dict], page: str | Path) -> Path:
    page = Path(page)
    text = leaderboard_html(rows, page)
    return write_whole(page, lambda tmp: tmp.write_text(text, encoding="utf-8"))
