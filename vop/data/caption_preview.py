"""How vop shows a caption wherever it prints one: in an error, a WARNING, `retrieve.py`'s results,
the result page, `check_videos.py`'s output. A caption is any text, up to a pasted 100,000-character
paragraph or a quoted csv caption over several lines, and a message must stay one readable line.

Query texts are shown the same way (a text query is a caption the user wrote).
"""
from __future__ import annotations

import re

PREVIEW_CHARS = 80  # what a message shows of a longer caption
_BREAKS = re.compile(r"\s")  # line breaks, tabs, U+2028 ...: each shown as one space


def caption_preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """`text` on one line: every whitespace character (a line break of a quoted csv caption, a tab) as
    a space, and past `limit` characters cut, with "…" and how many characters are left out:
    "a tram crosses a bridge at dusk, … (99,920 more characters)". Characters are counted in `text`
    as it is, so the count is exact."""
    flat = _BREAKS.sub(" ", text)
    if len(flat) <= limit:
        return flat
    left = len(flat) - limit
    return f"{flat[:limit]}… ({left:,} more character{'' if left == 1 else 's'})"
