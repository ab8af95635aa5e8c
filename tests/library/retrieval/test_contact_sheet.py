"""The PNG contact sheet's text: captions wrap between words, rank and score stay apart."""
from vop.retrieval.html import caption_lines, hit_caption


def test_captions_wrap_at_word_boundaries():
    text = "a small orange triangle moves slowly to the left on a dark blue background while a"
    lines = caption_lines(text, width=30, lines=4)
    assert all(len(line) <= 30 for line in lines)
    assert " ".join(lines) == text  # nothing cut inside a word ("orang e"), nothing lost
    words = set(text.split())
    assert all(set(line.split()) <= words for line in lines)


def test_long_captions_end_with_an_ellipsis():
    lines = caption_lines("word " * 40, width=30, lines=4)
    assert len(lines) == 4 and lines[-1].endswith("...") and len(lines[-1]) <= 30


def test_rank_and_score_are_two_spaces_apart():
    assert hit_caption(1, 0.91) == "#1  0.910"
    assert hit_caption(10, 0.5) == "#10  0.500"
    assert hit_caption(0, float("nan")) == "query video"
