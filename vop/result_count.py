"""How many results one search returns (k): one limit for `retrieve.py topk=`, `eval.py
examples_topk=`, the JSON API's `k` and the search page (docs/retrieval.md, "How many results").

A search ranks the whole gallery either way; k bounds what is sent, drawn and thumbnailed (each hit
of a page decodes a thumbnail strip), so a page stays quick to show.
"""
from __future__ import annotations

MAX_TOPK = 100


def topk_problem(k: object) -> str | None:
    """Why `k` cannot be a result count, or None."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_TOPK:
        return f"must be a whole number from 1 to {MAX_TOPK}"
    return None
