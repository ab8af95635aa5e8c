"""A user's captions file, row by row (vop/data/annotations/caption_rows.py, custom.py): every message
names the file and the line the row starts on (a quoted csv caption may span lines; a .json row is
at its key's line); a row repeating an earlier one is kept once and counted in a WARNING; a caption is
never printed whole (vop/data/caption_preview.py)."""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from vop.data.annotations.caption_rows import object_members, read_rows
from vop.data.annotations.common import AnnotationError
from vop.data.annotations.custom import load_custom
from vop.data.caption_preview import caption_preview
from vop.retrieval.folder import folder_split

LONG = ("a tram crosses the old bridge at dusk " * 2700)[:100_000]  # a pasted paragraph: 100,000 characters


@pytest.fixture
def clips(tmp_path) -> Path:
    """A folder the parser lists (it opens no video): ids beach/wave, city/tram, park/dog, park/cat."""
    root = tmp_path / "clips"
    for name in ("beach/wave.mp4", "city/tram.mkv", "park/dog.mp4", "park/cat.mov"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def error_of(clips: Path, captions: Path) -> str:
    with pytest.raises(AnnotationError) as err:
        load_custom(str(clips), str(captions))
    return str(err.value)


# ------------------------------------------------------------------ lines
def test_a_csv_error_names_the_physical_line_a_row_starts_on(clips, tmp_path):
    text = ('video,caption\r\n'                          # line 1 (Windows line ends)
            'beach/wave,"a wave\r\nthat rolls\r\nin"\r\n'  # lines 2-4: one row
            '\r\n'                                       # line 5: blank
            'city/tram,"a tram, ""the 9"""\r\n'          # line 6
            'park/dog,"a dog\nrunning",extra\r\n')         # lines 7-8: one row, one field too many
    assert f"{tmp_path / 'c.csv'} line 7: 3 fields, but the header (line 1) names 2" in \
        error_of(clips, write(tmp_path, "c.csv", text))
    rows = read_rows(write(tmp_path, "ok.csv", text.replace(",extra", ",  ")))  # trailing empty fields are fine
    assert [(r.line, r.video, r.caption) for r in rows] == [
        (2, "beach/wave", "a wave\r\nthat rolls\r\nin"), (6, "city/tram", 'a tram, "the 9"'),
        (7, "park/dog", "a dog\nrunning")]
    bad = text.replace(",extra", "").replace("park/dog", "park/dgo")
    assert f"{tmp_path / 'c.csv'} line 7: 'park/dgo'" in error_of(clips, write(tmp_path, "c.csv", bad))
    empty = 'video,caption\nbeach/wave,"two\nlines"\ncity/tram,"\n  \n"\n'
    assert f"{tmp_path / 'e.csv'} line 4, key 'caption': empty caption" in \
        error_of(clips, write(tmp_path, "e.csv", empty))


def test_a_json_row_is_at_its_keys_line(clips, tmp_path):
    text = ('{\n  "beach/wave": [\n    "waves",\n    "a beach"\n  ],\n\n'
            '  "city/tram":\n    "a tram",\n  "park/dgo": "x"\n}\n')
    rows = read_rows(write(tmp_path, "c.json", text.replace("park/dgo", "park/dog")))
    assert [(r.line, r.video, r.caption) for r in rows] == [(2, "beach/wave", "waves"), (2, "beach/wave", "a beach"),
                                                            (7, "city/tram", "a tram"), (9, "park/dog", "x")]
    message = error_of(clips, write(tmp_path, "c.json", text))
    assert f"{tmp_path / 'c.json'} line 9: 'park/dgo'" in message and "did you mean 'park/dog.mp4'?" in message
    wrong = text.replace('"a tram"', '["a tram", 3]')
    assert f"{tmp_path / 'w.json'} line 7, key 'city/tram': expected a caption text or a list of them, got " \
           '["a tram", 3]' in error_of(clips, write(tmp_path, "w.json", wrong))


class Pairs(list):
    """An object as json's object_pairs_hook gives it: its (key, value) pairs, repeated keys kept."""


def plain(value):
    """Nested Pairs as the dicts the plain decoder makes."""
    if isinstance(value, Pairs):
        return {k: plain(v) for k, v in value}
    return [plain(v) for v in value] if isinstance(value, list) else value


def test_object_members_equal_the_json_decoders_pairs():
    """Against json's own object_pairs_hook (the reference) on generated objects: repeated keys, nested
    objects, strings holding braces, commas, quotes and U+2028, whitespace and line breaks anywhere,
    the line of each key counted while the text is written."""
    rng = random.Random(0)
    values = [1, -2.5e3, None, True, "a \"quoted\" }, text", ["x", {"y": [1, {"z": "}"}]}], {}, [], "é \u2028 ok"]
    for _ in range(50):
        line = 1 + rng.randint(0, 2)
        text, lines, members = "\n" * (line - 1) + "{" + " " * rng.randint(0, 2), [], []
        for _ in range(rng.randint(0, 6)):
            gap = "\n" * rng.randint(0, 2) + " \t" * rng.randint(0, 1)
            line += gap.count("\n")
            lines.append(line)
            key = rng.choice(["a", "b", "c,d", "e\"f", "{g}", "h\u2028"])
            value = json.dumps(rng.choice(values), indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5)
            members.append(f"{gap}{json.dumps(key)}{' ' * rng.randint(0, 1)}:{' ' * rng.randint(0, 1)}{value}")
            line += value.count("\n")
        text += ",".join(members) + "\n}\n"
        reference = json.loads(text, object_pairs_hook=Pairs)
        assert [(k, v) for k, v, _ in object_members(text)] == [(k, plain(v)) for k, v in reference], text
        assert [n for _, _, n in object_members(text)] == lines, text


def test_jsonl_lines_end_at_newlines_only(clips, tmp_path):
    """JSON allows U+2028 and U+0085 unescaped in a string: such a caption is one line, not two."""
    text = json.dumps({"video": "beach/wave", "caption": "first\u2028second\x85third"}, ensure_ascii=False) + "\n" + \
        json.dumps({"video": "city/tram", "caption": ""}) + "\n"
    message = error_of(clips, write(tmp_path, "c.jsonl", text))
    assert f"{tmp_path / 'c.jsonl'} line 2, key 'caption': empty caption" in message
    [row] = read_rows(write(tmp_path, "ok.jsonl", text.split("\n")[0] + "\n"))
    assert (row.line, row.caption) == (1, "first\u2028second\x85third")


# ------------------------------------------------------------------ repeated rows
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_repeated_row_is_kept_once_and_counted(clips, tmp_path, caplog, suffix):
    records = [("beach/wave", "waves", "train"), ("city/tram", "a tram", "test"), ("beach/wave.mp4", "waves", "train"),
               ("beach/wave", "Waves", "train"), ("beach/wave", "waves", "train"), ("park/dog", "a dog", "train")]
    if suffix == ".csv":
        text = "video,caption,split\n" + "".join(f"{v},{c},{s}\n" for v, c, s in records)
    else:
        text = "".join(json.dumps({"video": v, "caption": c, "split": s}) + "\n" for v, c, s in records)
    path = write(tmp_path, f"c{suffix}", text)
    first = 2 if suffix == ".csv" else 1
    with caplog.at_level(logging.WARNING, logger="vop.data.annotations.custom"):
        splits = load_custom(str(clips), str(path))
    assert splits["train"].captions == ["waves", "Waves", "a dog"]  # another case is another caption
    assert f"custom data: {path}: 2 row(s) repeat an earlier row (the same video, caption and split) and are kept " \
           f"once: line {first + 2} repeats line {first} ('beach/wave': \"waves\"), line {first + 4} repeats line " \
           f"{first} ('beach/wave': \"waves\")" in caplog.text
    caplog.clear()
    other_split = text.replace("train", "val", 1) if suffix == ".csv" else text.replace('"train"', '"val"', 1)
    assert "'beach/wave' is in two splits: val at" in error_of(clips, write(tmp_path, f"s{suffix}", other_split))


def test_a_json_key_given_twice_keeps_both_and_says_so(clips, tmp_path, caplog):
    text = '{"beach/wave": "waves",\n "city/tram": "a tram",\n "beach/wave": ["waves", "a beach"]}'
    path = write(tmp_path, "c.json", text)
    with caplog.at_level(logging.WARNING):
        split = folder_split(clips, path)  # the folder gallery reads captions files the same way
    assert {c: split.video_ids[v] for c, v in zip(split.captions, split.caption_video)} == \
        {"waves": "beach/wave", "a beach": "beach/wave", "a tram": "city/tram"}
    assert f"{path} gives 1 key(s) more than once: 'beach/wave' on lines 1, 3; vop reads the captions of each" \
        in caplog.text
    assert "1 row(s) repeat an earlier row" in caplog.text and "line 3 repeats line 1 ('beach/wave': \"waves\")" \
        in caplog.text


# ------------------------------------------------------------------ long captions
def test_caption_preview_is_one_line_and_counts_what_it_leaves_out():
    assert caption_preview("a dog\nruns\tfast") == "a dog runs fast"
    assert caption_preview("x" * 80) == "x" * 80
    assert caption_preview("x" * 81) == "x" * 80 + "… (1 more character)"
    assert caption_preview(LONG) == LONG[:80] + "… (99,920 more characters)"
    assert caption_preview("ab\u2028cd" * 30, limit=10) == "ab cdab cd… (140 more characters)"


def test_a_long_caption_is_never_printed_whole(clips, tmp_path, caplog):
    records = [{"video": "beach/wave", "caption": LONG}, {"video": "beach/wave", "caption": LONG},
               {"video": "city/tram", "caption": [LONG, 7]}]
    path = write(tmp_path, "c.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    message = error_of(clips, path)
    assert message.endswith(f'got ["{LONG[:78]}… (99,927 more characters)')
    assert len(message.replace(str(path), "")) < 250
    two_videos = [*records[:2], {"video": "city/tram", "caption": "a tram"}]
    path = write(tmp_path, "d.jsonl", "".join(json.dumps(r) + "\n" for r in two_videos))
    with caplog.at_level(logging.WARNING):
        load_custom(str(clips), str(path), test_fraction=0.5)
    [warning] = [r.getMessage() for r in caplog.records if "repeat an earlier row" in r.getMessage()]
    assert warning.endswith(f"line 2 repeats line 1 ('beach/wave': \"{LONG[:80]}… (99,920 more characters)\")")
    assert len(warning.replace(str(path), "")) < 250
