"""Result pages: each query with its top-k hits as thumbnail strips (or captions), scores and ground truth.

`write_page` writes one self-contained HTML file (thumbnails inlined as base64 JPEG, no external
files or scripts) and a PNG contact sheet of the same content drawn with PIL.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vop.data.caption_preview import caption_preview
from vop.data.decoders.base import Decoder, read_window
from vop.data.windows import span_window

THUMB_HEIGHT = 72
GT_COLOUR = "#1a9641"
SHEET_FRAMES = 2  # frames per hit in the PNG contact sheet (the HTML page shows them all)
# The sheet's font: Pillow's own (Aileron) at 13 px, where a space is 5 px of white against 2 px
# between letters; at Pillow's default 10 px a space is as narrow as the gap between two letters
# and "moves down" reads "movesdown" (tests/library/retrieval/test_contact_sheet.py measures it).
SHEET_FONT = ImageFont.load_default(size=13)
LINE_H = 16


@dataclass
class Hit:
    label: str  # video id (t2v) or caption (v2t)
    score: float
    frames: list[Image.Image] = field(default_factory=list)  # the hit's thumbnail strip (t2v)
    is_gt: bool = False
    path: str = ""  # the hit's video file: the page links to it ("" where unknown)
    caption: str | None = None  # t2v: the hit video's first caption, where the gallery has one
    span: tuple[float, float] | None = None  # a moment's (start, end) seconds; None: the whole video


@dataclass
class QueryView:
    query: str
    mode: str  # "t2v" or "v2t"
    hits: list[Hit]
    frames: list[Image.Image] = field(default_factory=list)  # the query video's strip (v2t)


def thumbnails(decoder: Decoder, path: str | Path, count: int = 4, height: int = THUMB_HEIGHT,
               span: tuple[float, float] | None = None) -> list[Image.Image]:
    """`count` evenly spaced frames of a video (of its `span` seconds: a moment), scaled to `height` pixels."""
    if span is None:
        frames = decoder.read(path, count, "uniform").numpy()  # [count, H, W, 3] uint8
    else:
        frames = read_window(decoder, path, span_window(decoder, path, span), count, "uniform").numpy()
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    return [im.resize((max(1, round(im.width * height / im.height)), height), Image.BILINEAR) for im in images]


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _strip_html(frames: list[Image.Image], alt: str) -> str:
    return "".join(f'<img class="thumb" alt="{html.escape(alt)}" src="{_data_uri(f)}">' for f in frames)


def file_link(path: str | Path) -> str:
    """A link to a local file that a browser opens from the page (an absolute file: URI)."""
    return Path(path).expanduser().resolve().as_uri()


def shown_query(view: QueryView) -> str:
    """The query as the page and the sheet show it: a text like every caption (caption_preview), a
    video by its whole path."""
    return caption_preview(view.query) if view.mode == "t2v" else view.query


def span_label(span: tuple[float, float]) -> str:
    """A moment's span as the pages show it: "0:12.0-0:15.5"."""
    return "-".join(f"{int(t // 60)}:{t % 60:04.1f}" for t in span)


def _hit_html(rank: int, hit: Hit, mode: str) -> str:
    cls = "hit gt" if hit.is_gt else "hit"
    badge = '<span class="badge">ground truth</span>' if hit.is_gt else ""
    shown = caption_preview(hit.label) if mode == "v2t" else hit.label  # v2t: the hit is a caption
    label = html.escape(shown)
    strip = _strip_html(hit.frames, shown)
    if hit.span is not None:  # a moment: its time span beside the id
        label += f' <span class="span">{html.escape(span_label(hit.span))}</span>'
    if hit.path:  # the id and the thumbnails open the video (a moment: at its start, media fragment #t=)
        href = file_link(hit.path) + (f"#t={hit.span[0]:g},{hit.span[1]:g}" if hit.span is not None else "")
        href = html.escape(href, quote=True)
        label, strip = f'<a href="{href}">{label}</a>', f'<a href="{href}">{strip}</a>' if strip else ""
    caption = f'<div class="caption">{html.escape(caption_preview(hit.caption))}</div>' if hit.caption else ""
    return (f'<div class="{cls}"><div class="meta">#{rank} &middot; {hit.score:.3f} {badge}</div>'
            f'<div class="label">{label}</div>{caption}{strip}</div>')


def _query_html(view: QueryView) -> str:
    query = shown_query(view)
    head = f'<h2><span class="mode">{view.mode}</span> {html.escape(query)}</h2>'
    query_strip = f'<div class="query">{_strip_html(view.frames, query)}</div>' if view.frames else ""
    hits = "".join(_hit_html(i + 1, h, view.mode) for i, h in enumerate(view.hits))
    return f'<section class="result">{head}{query_strip}<div class="hits">{hits}</div></section>'


STYLE = f"""body{{font-family:sans-serif;margin:24px;background:#fafafa;color:#222}}
.result{{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;margin-bottom:16px}}
h2{{font-size:16px;margin:0 0 8px}} .mode{{background:#444;color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}}
.hits{{display:flex;flex-wrap:wrap;gap:6px}} .hit{{border:2px solid #eee;border-radius:4px;padding:4px}}
.hit.gt{{border-color:{GT_COLOUR};background:#eef8f0}} .badge{{color:#fff;background:{GT_COLOUR};border-radius:3px;
padding:0 5px;font-size:11px}} .meta{{font-size:12px;color:#555}} .label{{font-size:13px;margin:2px 0}}
.thumb{{height:{THUMB_HEIGHT}px;margin-right:2px}} .span{{font-size:12px;color:#555}}
.caption{{font-size:12px;color:#444;max-width:360px;margin:2px 0}}"""


def page_html(views: list[QueryView], title: str) -> str:
    body = "".join(_query_html(v) for v in views)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def contact_sheet(views: list[QueryView], width: int = 1200) -> Image.Image:
    """The same results as one PNG: a row of hits per query, ground truth framed in green."""
    pad = 8
    row_h = THUMB_HEIGHT + LINE_H + 2 * pad
    sheet = Image.new("RGB", (width, pad + len(views) * (row_h + LINE_H + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.font = SHEET_FONT
    y = pad
    for view in views:
        # The text as the page shows it: a 100,000-character query would also make fitted() crawl.
        draw.text((pad, y), fitted(f"[{view.mode}] {shown_query(view)}", width - 2 * pad), fill="black")
        x = pad
        if view.frames:  # a video query: its own strip first
            x = _draw_hit(sheet, draw, Hit("query", float("nan"), view.frames), 0, x, y + LINE_H + 4, width)
        for rank, hit in enumerate(view.hits, 1):
            x = _draw_hit(sheet, draw, hit, rank, x, y + LINE_H + 4, width)
        y += row_h + LINE_H + 6
    return sheet


def text_width(text: str) -> float:
    return SHEET_FONT.getlength(text)


def fitted(text: str, width: float) -> str:
    """`text`, cut at a word boundary and ended with "..." where it is wider than `width` pixels."""
    if len(text) <= width and text_width(text) <= width:
        return text
    # Every glyph is at least a pixel wide: past `width` characters nothing fits (and a cut word is dropped).
    words = text[:int(width) + 1].split(" ")
    words = words[:-1] if len(text) > width and len(words) > 1 else words
    while len(words) > 1 and text_width(" ".join(words) + " ...") > width:
        words.pop()
    line = " ".join(words)
    if len(words) > 1 or text_width(line + " ...") <= width:
        return line + " ..."
    while line and text_width(line + "...") > width:  # one word wider than the line: cut inside it
        line = line[:-1]
    return line + "..."


def caption_lines(text: str, width: float = 180, lines: int = 4) -> list[str]:
    """`text` wrapped between words into at most `lines` lines of at most `width` pixels in the
    sheet's font; a cut shows as "..."."""
    wrapped: list[str] = []
    words = text.split()
    while words and len(wrapped) < lines:
        line = words.pop(0)
        while words and text_width(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        wrapped.append(fitted(line, width))
    if words:  # more than fits: the last line says so
        wrapped[-1] = fitted(f"{wrapped[-1]} {' '.join(words)}", width)
    return wrapped or [""]


def hit_caption(rank: int, score: float) -> str:
    """"#1  0.910": two spaces, as the sheet's font draws a space much narrower than a digit."""
    return f"#{rank}  {score:.3f}" if rank else "query video"


def _draw_hit(sheet: Image.Image, draw: ImageDraw.ImageDraw, hit: Hit, rank: int, x: int, y: int, width: int) -> int:
    """Draw one hit at (x, y); returns the next x."""
    strip_w = sum(f.width for f in hit.frames[:SHEET_FRAMES]) or 180
    if x + strip_w > width:
        return x
    fx = x
    for frame in hit.frames[:SHEET_FRAMES]:
        sheet.paste(frame, (fx, y))
        fx += frame.width
    if not hit.frames:  # a caption hit (v2t): its text, wrapped at word boundaries
        for i, line in enumerate(caption_lines(caption_preview(hit.label), strip_w, lines=THUMB_HEIGHT // LINE_H)):
            draw.text((x, y + LINE_H * i), line, fill="black")
    caption = hit_caption(rank, hit.score) + (f"  {span_label(hit.span)}" if hit.span is not None else "")
    draw.text((x, y + THUMB_HEIGHT + 4), caption, fill="black")
    if hit.is_gt:
        draw.rectangle((x - 3, y - 3, x + strip_w + 2, y + THUMB_HEIGHT + LINE_H + 6), outline=GT_COLOUR, width=3)
    return x + strip_w + 14


def write_page(views: list[QueryView], out: str | Path, title: str = "vop retrieval results") -> tuple[Path, Path]:
    """Write `out` (HTML) and `out` with suffix .png (contact sheet); returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page_html(views, title), encoding="utf-8")
    png = out.with_suffix(".png")
    contact_sheet(views).save(png)
    return out, png
