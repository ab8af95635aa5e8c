"""The PNG contact sheet's text: spaces that show, captions wrapped between words within the strip,
rank and score apart."""
import numpy as np
from PIL import Image, ImageDraw

from vop.retrieval.html import SHEET_FONT, Hit, QueryView, caption_lines, contact_sheet, hit_caption, text_width

TEXT = "a small orange triangle moves slowly to the left on a dark blue background while a"


def ink_gaps(text: str) -> list[int]:
    """Widths of the blank column runs between inked columns of `text` drawn in the sheet's font."""
    image = Image.new("L", (int(text_width(text)) + 20, 30), 255)
    ImageDraw.Draw(image).text((5, 5), text, fill=0, font=SHEET_FONT)
    ink = (np.asarray(image) < 128).any(axis=0)
    columns = np.flatnonzero(ink)
    gaps, run = [], 0
    for inked in ink[columns[0]:columns[-1] + 1]:
        if inked and run:
            gaps.append(run)
        run = 0 if inked else run + 1
    return gaps


def test_a_space_is_wider_than_any_gap_between_letters():
    """Read as a reader does: each space a gap wider than every gap inside a word ("moves down", not
    "movesdown", as Pillow's default 10 px font drew it)."""
    for text in ("moves down", "a red square", "[t2v] a pink circle moves down on a white background"):
        in_words = max(g for word in text.split() for g in ink_gaps(word) or [0])
        gaps = ink_gaps(text)
        wide = [g for g in gaps if g > in_words]
        assert len(wide) >= text.count(" "), (text, gaps, in_words)


def test_captions_wrap_between_words_within_the_strip():
    lines = caption_lines(TEXT, width=180, lines=6)
    assert all(text_width(line) <= 180 for line in lines)
    assert " ".join(lines) == TEXT  # nothing cut inside a word ("orang e"), nothing lost
    assert len(lines) > 1


def test_long_captions_end_with_an_ellipsis_inside_the_width():
    lines = caption_lines("word " * 40, width=180, lines=4)
    assert len(lines) == 4 and lines[-1].endswith("...") and all(text_width(line) <= 180 for line in lines)
    assert caption_lines("x" * 300, width=100, lines=2)[-1].endswith("...")  # one word wider than the strip


def test_the_sheet_draws_queries_and_caption_hits_in_its_font():
    view = QueryView("a pink circle moves down", "v2t", [Hit(TEXT, 0.9), Hit("a red square", 0.5, is_gt=True)],
                     frames=[Image.new("RGB", (96, 72), "gray")] * 2)
    sheet = np.asarray(contact_sheet([view], width=600).convert("L"))
    assert sheet.shape[1] == 600 and (sheet < 128).any()


def test_rank_and_score_are_two_spaces_apart():
    assert hit_caption(1, 0.91) == "#1  0.910"
    assert hit_caption(10, 0.5) == "#10  0.500"
    assert hit_caption(0, float("nan")) == "query video"
