"""A tuned model as a Hugging Face CLIP folder: `CLIPModel.from_pretrained(folder)` and
`CLIPProcessor.from_pretrained(folder)` load it with no vop code.

Only methods whose trained tensors are CLIP's own (full, bias, proj, partial; zeroshot trivially)
fit: their tensors are already merged into CLIP's modules. A method that adds modules (adapters,
VoP's prompts, generators and inter-frame layers) changes the computation in places a CLIPModel
does not have, so it is refused: its embeddings come only from vop's own encoder.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import transformers

from vop.data.gpu_transforms import CLIP_MEAN, CLIP_STD
from vop.errors import ConfigError
from vop.models.clip import CLIPVideoModel
from vop.models.hooks import TowerHooks

INFO_FILE = "vop_export.json"  # where the folder came from and how vop read videos with it
INFO_FORMAT = "vop-hf-export/1"


class NotExportableError(ConfigError):
    """The run's method adds modules that a plain CLIPModel has no place for."""


def check_exportable(model: CLIPVideoModel, method: str) -> None:
    """Refuse a model whose method installed hooks (new modules around or between CLIP's blocks)."""
    hooks = model.hooks
    if type(hooks) is TowerHooks:
        return
    values = sum(p.numel() for p in hooks.parameters())
    raise NotExportableError(
        f"method={method} cannot be exported as a Hugging Face CLIP folder: it adds modules to CLIP "
        f"({type(hooks).__name__}, {values:,} values) that change how CLIP computes, and CLIPModel has no "
        "place for them, so plain transformers code could not reproduce its embeddings. Use the run with "
        "vop itself (retrieve.py ckpt=<run>, vop.retrieval). Exported are the methods whose trained tensors "
        "are CLIP's own: full, bias, proj, partial")


def image_processor(image_size: int):
    """CLIP's preprocessing at this model's size: bicubic resize of the short side, centre crop,
    CLIP's mean and std (what vop's evaluation transform does to each frame)."""
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor  # no torchvision
    return cls(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
               resample=3, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


def check_out_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out={out} exists and is not an empty folder: export into a new folder (nothing was "
                          "written)")


def write_hf_folder(model: CLIPVideoModel, tokenizer, out: str | Path, max_text_len: int, info: dict) -> Path:
    """Write model.clip, its tokenizer (truncating at `max_text_len` tokens, as the run did) and the
    image preprocessing into `out` (a new or empty folder), all at once: the files are written
    beside it and moved into place, so a failed export leaves no half folder."""
    out = Path(out).expanduser()
    check_out_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.clip.save_pretrained(tmp)
        tokenizer = copy.deepcopy(tokenizer)  # the shared (cached) tokenizer keeps its own length
        tokenizer.model_max_length = max_text_len
        tokenizer.save_pretrained(tmp)
        image_processor(model.image_size).save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps({"format": INFO_FORMAT, **info}, indent=2, sort_keys=True) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
