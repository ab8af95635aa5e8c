"""Tokenizer: vocabulary, ids equal to OpenAI's reference SimpleTokenizer, truncation, padding."""

import importlib.util
from pathlib import Path

import pytest
import torch

from vop.data.tokenizer import VOCAB_SIZE, load_tokenizer, openai_bpe_tokenizer, tokenize

SOT, EOT = 49406, 49407

LONG = " ".join(["antidisestablishmentarianism and a cat"] * 30)  # far longer than 77 tokens
SENTENCES = [
    "a man is cooking pasta in a kitchen",
    "A Woman SINGS on stage!!! Then... she bows?",
    "two dogs don't play; they're running (fast) -- 3 kids at 10:30pm, $5.99",
    "café, naïve résumé — Straße über Łódź; 東京 タワー 🙂",
    "   extra   whitespace\tand\nnewlines   ",
    "",
    LONG,
    "rock &amp; roll &lt;live&gt; &quot;show&quot;",  # HTML entities, as in scraped captions
    "cafÃ© ﬁsh ＡＢＣ",  # mojibake, a ligature, full-width letters: ftfy repairs them
]


@pytest.fixture(scope="module")
def tokenizer():
    return openai_bpe_tokenizer()


@pytest.fixture(scope="module")
def reference():
    """OpenAI's tokenizer as vendored by open_clip, loaded from its file without importing the
    open_clip package (whose __init__ needs torchvision)."""
    pytest.importorskip("ftfy", reason="reference tokenizer needs ftfy: pip install ftfy")
    pytest.importorskip("regex", reason="reference tokenizer needs regex: pip install regex")
    spec = importlib.util.find_spec("open_clip")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("_openai_reference_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def test_vocab_size_and_special_ids(tokenizer) -> None:
    assert len(tokenizer) == VOCAB_SIZE == 49_408
    assert tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"]) == [SOT, EOT]


def test_tokenizer_is_cached(tokenizer) -> None:
    assert openai_bpe_tokenizer() is tokenizer


def test_ids_match_openai_reference(tokenizer, reference) -> None:
    got = tokenize(tokenizer, SENTENCES, max_len=77)
    expected = reference(SENTENCES, context_length=77)
    assert got.dtype == torch.long and got.shape == (len(SENTENCES), 77)
    for row, sentence in enumerate(SENTENCES):
        assert got[row].tolist() == expected[row].tolist(), sentence


def test_ids_match_openai_reference_short_context(tokenizer, reference) -> None:
    # VoP tokenises captions to 77 - 8 = 69 tokens.
    assert torch.equal(tokenize(tokenizer, SENTENCES, max_len=69), reference(SENTENCES, context_length=69))


def test_truncation_keeps_eot_last(tokenizer) -> None:
    ids = tokenize(tokenizer, [LONG], max_len=16)[0]
    assert ids[0] == SOT and ids[-1] == EOT
    assert (ids == EOT).sum() == 1
    full = tokenize(tokenizer, [LONG], max_len=400)[0]
    assert torch.equal(ids[:-1], full[:15])  # the kept tokens are the first ones


def test_padding_after_eot(tokenizer) -> None:
    ids = tokenize(tokenizer, ["a cat", "a very small grey cat"], max_len=12)
    assert ids[0, :4].tolist() == [SOT, 320, 2368, EOT]
    assert (ids[0, 4:] == 0).all()
    eot_pos = (ids[1] == EOT).nonzero().item()
    assert (ids[1, eot_pos + 1 :] == 0).all()
    assert tokenize(tokenizer, [""], max_len=4)[0].tolist() == [SOT, EOT, 0, 0]


def test_bad_inputs(tokenizer) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        tokenize(tokenizer, "a cat")
    with pytest.raises(ValueError, match="max_len"):
        tokenize(tokenizer, ["a cat"], max_len=1)


def test_load_tokenizer_error_names_path(tmp_path) -> None:
    missing = str(tmp_path / "no_such_clip")
    with pytest.raises(OSError, match="no_such_clip") as info:
        load_tokenizer(missing)
    assert "vocab.json" in str(info.value)
    assert info.value.__cause__ is not None


def test_load_tokenizer_rejects_folder_without_vocab(tmp_path) -> None:
    # transformers would otherwise build a 2-token tokenizer from an empty folder.
    with pytest.raises(OSError, match="offline") as info:
        load_tokenizer(str(tmp_path))
    assert "expected at least 49408" in str(info.value.__cause__)


def test_load_tokenizer_from_local_folder(tokenizer, tmp_path) -> None:
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    assert torch.equal(tokenize(loaded, SENTENCES), tokenize(tokenizer, SENTENCES))
