"""An evaluation's similarity matrix on disk, and matrices dumped by other codebases.

`similarity.safetensors` (what train.py's final evaluation and eval.py write into the run folder):
  tensors  scores [M, N] float32 (cosine, caption m vs video n), text_video [M] int64 (the column of
           caption m's video), caption_ids [M] int64 (the split's caption index), video_ids [N] int64,
           and, when a bank was encoded, bank [B, N] float32 (training captions vs the same videos)
  metadata format "vop-similarity", version "1", scores "cosine", split, data, videos (JSON list of
           the N video names, in column order)
The header is checked when read: a file that is not this format, or whose shapes disagree, is refused
by name. A plain `.npy` [captions x videos] matrix (CLIP4Clip, X-Pool, DGL dumps) is read with
allow_pickle=False, with a caption->video mapping (one caption per video in order, as MSR-VTT 1k-A,
or a mapping file) and the factor its scores carry over cosine (`scale`: 1 for X-Pool's cosine
similarities, 100 for CLIP4Clip/DGL's logit-scaled ones).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vop.errors import InputError, MissingFileError
from vop.file_writes import write_whole
from vop.metrics.retrieval import Similarity

FILENAME = "similarity.safetensors"
FORMAT, VERSION = "vop-similarity", "1"
TENSORS = {"scores": torch.float32, "text_video": torch.int64, "caption_ids": torch.int64, "video_ids": torch.int64}
OPTIONAL = {"bank": torch.float32}


def save_similarity(path: str | Path, sim: Similarity, videos: list[str], split: str, data: str,
                    bank: torch.Tensor | None = None) -> Path:
    """Write `sim` (and the bank, if any) atomically; `videos` are the N column names."""
    if len(videos) != sim.scores.shape[1]:
        raise ValueError(f"{len(videos)} video names for {sim.scores.shape[1]} columns")
    tensors = {"scores": sim.scores.float(), "text_video": sim.text_video.long(),
               "caption_ids": sim.caption_ids.long(), "video_ids": sim.video_ids.long()}
    if bank is not None:
        tensors["bank"] = bank.float()
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "version": VERSION, "scores": "cosine", "split": split, "data": data,
            "videos": json.dumps(list(videos))}
    return write_whole(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


class LoadedSimilarity:
    """A matrix to rescore: cosine `scores` [M, N], `text_video` [M], optional `bank` [B, N], and where it came from."""

    def __init__(self, scores: torch.Tensor, text_video: torch.Tensor, bank: torch.Tensor | None,
                 split: str, videos: list[str] | None):
        self.scores, self.text_video, self.bank, self.split, self.videos = scores, text_video, bank, split, videos


def read_similarity(path: str | Path) -> LoadedSimilarity:
    """A `similarity.safetensors` written by save_similarity; refuses anything else by name."""
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta, names = f.metadata() or {}, set(f.keys())
            tensors = {name: f.get_tensor(name) for name in names}
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds for a bad header
        raise InputError(f"{path} is not a safetensors file ({err})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION or meta.get("scores") != "cosine":
        raise InputError(f"{path}: not a vop similarity matrix (header format={meta.get('format')!r}, "
                         f"version={meta.get('version')!r}; expected {FORMAT!r} version {VERSION})")
    unknown, missing = names - set(TENSORS) - set(OPTIONAL), set(TENSORS) - names
    if unknown or missing:
        raise InputError(f"{path}: tensors {sorted(missing)} missing, {sorted(unknown)} unexpected")
    for name, dtype in {**TENSORS, **OPTIONAL}.items():
        if name in tensors and tensors[name].dtype != dtype:
            raise InputError(f"{path}: {name} is {tensors[name].dtype}, expected {dtype}")
    scores, videos = tensors["scores"], json.loads(meta.get("videos", "null"))
    m, n = scores.shape if scores.ndim == 2 else (-1, -1)
    shapes_ok = (scores.ndim == 2 and tensors["text_video"].shape == (m,) and tensors["caption_ids"].shape == (m,)
                 and tensors["video_ids"].shape == (n,) and isinstance(videos, list) and len(videos) == n
                 and ("bank" not in tensors or (tensors["bank"].ndim == 2 and tensors["bank"].shape[1] == n)))
    if not shapes_ok:
        raise InputError(f"{path}: shapes disagree (scores {tuple(scores.shape)}, text_video "
                         f"{tuple(tensors['text_video'].shape)}, video_ids {tuple(tensors['video_ids'].shape)}, "
                         f"{len(videos) if isinstance(videos, list) else 'no'} video names)")
    _check_mapping(tensors["text_video"], n, path)
    return LoadedSimilarity(scores, tensors["text_video"], tensors.get("bank"), meta.get("split", "test"), videos)


def read_npy_similarity(path: str | Path, scale: float, captions: str | Path | None = None,
                        bank: str | Path | None = None) -> LoadedSimilarity:
    """A [captions x videos] `.npy` from another codebase. `scale`: what its scores are over cosine
    (1 or 100). `captions`: None = caption i describes video i (a square matrix, MSR-VTT 1k-A's order), or
    a file giving each caption's video column (`.npy` int array [M], or text with one integer per line)."""
    scores = _npy(path, "similarity matrix")
    if scale <= 0:
        raise InputError(f"scale={scale}: the factor the scores carry over cosine must be > 0 (1 or 100)")
    m, n = scores.shape
    if captions is None:
        if m != n:
            raise InputError(f"{path} is [{m}, {n}]: without captions=<mapping file> caption i must describe "
                             "video i, so the matrix must be square")
        text_video = torch.arange(m)
    else:
        text_video = _mapping(captions, m)
    _check_mapping(text_video, n, Path(path))
    bank_scores = None
    if bank is not None:
        bank_scores = _npy(bank, "bank") / scale
        if bank_scores.shape[1] != n:
            raise InputError(f"{bank}: the bank is {tuple(bank_scores.shape)}, its columns must be the {n} videos")
    return LoadedSimilarity(scores / scale, text_video, bank_scores, "test", None)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    return path


def _npy(path: str | Path, what: str) -> torch.Tensor:
    path = _existing(path)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:  # an object array or not a .npy at all
        raise InputError(f"{path}: not a plain numeric .npy {what} ({err})") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating) or 0 in array.shape:
        raise InputError(f"{path}: the {what} must be a non-empty 2-d float array, got {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{path}: the {what} holds NaN or inf")
    return torch.from_numpy(array.astype(np.float64))


def _mapping(path: str | Path, rows: int) -> torch.Tensor:
    path = _existing(path)
    try:
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            values = np.array([int(line) for line in path.read_text().split()], dtype=np.int64)
    except ValueError as err:
        raise InputError(f"{path}: a caption->video mapping is integers, one per caption ({err})") from None
    if values.shape != (rows,) or not np.issubdtype(values.dtype, np.integer):
        raise InputError(f"{path}: expected {rows} integer video columns, one per caption, got {values.dtype} "
                         f"{values.shape}")
    return torch.from_numpy(values.astype(np.int64))


def _check_mapping(text_video: torch.Tensor, num_videos: int, path: Path) -> None:
    if text_video.numel() and (int(text_video.min()) < 0 or int(text_video.max()) >= num_videos):
        raise InputError(f"{path}: caption->video columns must lie in [0, {num_videos})")
