"""CLIP text tokenisation with OpenAI CLIP semantics, fast and offline.

Two ways to get a tokenizer:
- `openai_bpe_tokenizer()` builds HF's `CLIPTokenizer` from OpenAI's own BPE file
  (`bpe_simple_vocab_16e6.txt.gz`, shipped in the `open_clip_torch` wheel), so no network or
  Hugging Face cache is needed.
- `load_tokenizer(name_or_path)` loads `vocab.json`/`merges.txt` from a local folder or the HF cache.

`tokenize()` then produces OpenAI's `clip.tokenize` layout: SOT + BPE tokens + EOT, truncated
with EOT kept last, zero-padded to `max_len`.

OpenAI's Python tokenizer runs `ftfy.fix_text` and a double `html.unescape` before BPE; HF's
tokenizer only normalises (NFC, whitespace, lower case). `tokenize()` applies OpenAI's cleaning
first, so ids equal OpenAI's also for HTML entities (`&amp;`), mojibake (`Ã©`), ligatures (`ﬁ`)
and full-width letters.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
from pathlib import Path

import ftfy
import numpy as np
import torch
from transformers import CLIPTokenizer

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
# OpenAI's vocabulary: 256 byte symbols, the same with "</w>", 48,894 merges, 2 special tokens.
NUM_MERGES = 49152 - 256 - 2
VOCAB_SIZE = 256 * 2 + NUM_MERGES + 2  # 49,408


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE, in OpenAI's vocab order.

    Printable Latin-1 bytes map to themselves (listed first, in byte order); the remaining bytes
    (control chars, space, ...) map to code points 256, 257, ... so that no symbol is whitespace.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    kept = set(printable)
    others = [b for b in range(256) if b not in kept]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def find_bpe_file() -> Path:
    """Locate OpenAI's BPE file inside the installed open_clip package without importing it
    (importing `open_clip` pulls in torchvision, which we do not require)."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / BPE_FILE_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Could not find OpenAI's CLIP BPE file '{BPE_FILE_NAME}'. It ships inside the "
        "'open_clip_torch' package: `pip install --no-deps open_clip_torch`, or use "
        "load_tokenizer(<local folder with vocab.json and merges.txt>) instead."
    )


@functools.cache
def openai_bpe_tokenizer(bpe_file: str | None = None) -> CLIPTokenizer:
    """HF `CLIPTokenizer` built offline from OpenAI's BPE file (the one in the open_clip wheel, or
    `bpe_file`, e.g. a ModelScope model folder's); cached per process and file."""
    lines = gzip.open(bpe_file or find_bpe_file()).read().decode("utf-8").split("\n")
    merge_lines = lines[1 : NUM_MERGES + 1]  # line 0 is a version header
    merges = [tuple(line.split()) for line in merge_lines]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += [SOT_TOKEN, EOT_TOKEN]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"BPE file {BPE_FILE_NAME} gave {len(vocab)} tokens, expected {VOCAB_SIZE}")
    return CLIPTokenizer(vocab=vocab, merges=merges)


def load_tokenizer(name_or_path: str) -> CLIPTokenizer:
    """`CLIPTokenizer.from_pretrained(name_or_path)` with an actionable error when offline.

    Local files (a folder, or the HF cache) are tried first, so a cached tokenizer loads without
    any network request. Only a hub id missing from the cache goes to the network; without
    network, set HF_HUB_OFFLINE=1, or the hub client retries for minutes before failing.
    """
    try:
        return _with_vocab(CLIPTokenizer.from_pretrained(name_or_path, local_files_only=True))
    except Exception as local_err:  # HF raises OSError, ValueError, ...: all mean "not here"
        if Path(name_or_path).expanduser().exists() or _looks_like_path(name_or_path):
            raise _not_loadable(name_or_path) from local_err
    try:
        return _with_vocab(CLIPTokenizer.from_pretrained(name_or_path))
    except Exception as err:  # offline, unknown repo id, HTTP errors...
        raise _not_loadable(name_or_path) from err


def _with_vocab(tokenizer: CLIPTokenizer) -> CLIPTokenizer:
    """transformers 5 does not fail when no vocab file is found: it silently builds a tokenizer
    holding only the special tokens. Reject that instead of producing garbage ids."""
    if len(tokenizer) < VOCAB_SIZE:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, expected at least {VOCAB_SIZE}")
    return tokenizer


def _looks_like_path(name_or_path: str) -> bool:
    """A hub id is `name` or `org/name`; anything else is meant as a local path."""
    return name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1


def _not_loadable(name_or_path: str) -> OSError:
    return OSError(
        f"Could not load the CLIP tokenizer files for '{name_or_path}' offline. Point "
        "`name_or_path` at a local folder containing vocab.json and merges.txt (e.g. a "
        "downloaded copy of 'openai/clip-vit-base-patch32'), or make the model available in "
        "the Hugging Face cache (download once, then set HF_HUB_OFFLINE=1). Alternatively use "
        "vop.data.tokenizer.openai_bpe_tokenizer(), which needs only open_clip_torch."
    )


def tokenize(tokenizer: CLIPTokenizer, texts: list[str], max_len: int = 77) -> torch.Tensor:
    """Token ids [B, max_len] laid out like OpenAI's `clip.tokenize`.

    Row = SOT, BPE tokens, EOT, then zeros. Captions that do not fit are truncated and their
    last slot is overwritten with EOT, because CLIP reads the text feature at the first EOT.
    The zero padding is never attended to by that feature (causal mask), so its value is moot.
    """
    if isinstance(texts, str):
        raise TypeError("tokenize() expects a list of strings, got a single str")
    if max_len < 2:
        raise ValueError(f"max_len must leave room for SOT and EOT, got {max_len}")
    sot, eot = tokenizer.convert_tokens_to_ids([SOT_TOKEN, EOT_TOKEN])
    encoded = _encode_without_specials(tokenizer, [basic_clean(t) for t in texts])
    out = np.zeros((len(encoded), max_len), dtype=np.int64)  # [B, max_len]
    out[:, 0] = sot
    for row, ids in enumerate(encoded):
        body = ids[: max_len - 2]  # room for SOT and EOT
        out[row, 1 : 1 + len(body)] = body
        out[row, 1 + len(body)] = eot
    return torch.from_numpy(out)


def basic_clean(text: str) -> str:
    """OpenAI CLIP's text cleaning: repair broken unicode, unescape HTML (twice, as OpenAI does)."""
    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def _encode_without_specials(tokenizer: CLIPTokenizer, texts: list[str]) -> list[list[int]]:
    """BPE ids per text, no SOT/EOT. One batched call into the Rust tokenizer; calling it
    directly (without offsets) skips transformers' BatchEncoding wrapper, ~30% cheaper."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow (pure Python) tokenizer
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [enc.ids for enc in encode(texts, add_special_tokens=False)]
