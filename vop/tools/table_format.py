"""Cell formats and row order shared by the results table (make_table) and the leaderboard page."""
from __future__ import annotations

from vop.paper import METHOD_ORDER

METRICS = ("R@1", "R@5", "R@10", "MdR", "MnR")


def method_order(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def fmt(value, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.1f}" if signed else (f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}")
    return str(value)


def fmt_se(se: float) -> str:
    return f"{se:.2f}" if se < 0.1 else f"{se:.1f}"
