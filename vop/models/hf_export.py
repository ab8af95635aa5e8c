"""A tuned model as a Hugging Face CLIP folder: `CLIPModel.from_pretrained(folder)` and
`CLIPProcessor.from_pretrained(folder)` load it with no vop code.

Only methods whose trained tensors are CLIP's own (full, bias, proj, partial; zeroshot trivially)
fit: their tensors are already merged into CLIP's modules; LoRA's low-rank updates are merged into
the weights they update first (`TuningMethod.merge`), leaving plain `nn.Linear`s. A method that adds modules (adapters,
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
from vop.errors import ConfigError, UserError
from vop.file_writes import as_os_error, failure_reason, normal_permissions, write_problem
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
        "are CLIP's own: full, bias, proj, partial, and lora (merged)")


def image_processor(image_size: int):
    """CLIP's preprocessing at this model's size: bicubic resize of the short side, centre crop,
    CLIP's mean and std (what vop's evaluation transform does to each frame)."""
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor  # no torchvision
    return cls(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
               resample=3, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


def check_out_folder(out: Path) -> None:
    """`out` must be new or an empty folder (a mount point included), somewhere this process can write."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out={out} exists and is not an empty folder: export into a new folder (nothing was "
                          "written)")
    problem = write_problem(out)
    if problem:
        raise ConfigError(f"out={out}: {problem}: give out=<a new or empty folder you can write> (nothing was "
                          "written)")


class ExportWriteError(UserError):
    """The export's files could not be written (a full disk, a folder gone read-only)."""


def write_hf_folder(model: CLIPVideoModel, tokenizer, out: str | Path, max_text_len: int, info: dict) -> Path:
    """Write model.clip, its tokenizer (truncating at `max_text_len` tokens, as the run did) and the
    image preprocessing into `out` (a new or empty folder), all at once: the files are written into a
    hidden folder inside `out` and then moved up, so a failed export leaves `out` as it was (empty,
    or not there), and `out` may be a mount point (which cannot be replaced by a rename)."""
    out = Path(out).expanduser()
    check_out_folder(out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".vop-export-{os.getpid()}"
    try:
        model.clip.save_pretrained(tmp)
        tokenizer = copy.deepcopy(tokenizer)  # the shared (cached) tokenizer keeps its own length
        tokenizer.model_max_length = max_text_len
        tokenizer.save_pretrained(tmp)
        image_processor(model.image_size).save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps({"format": INFO_FORMAT, **info}, indent=2, sort_keys=True) + "\n")
        normal_permissions(tmp)  # safetensors makes its files 0600
        for path in sorted(tmp.iterdir()):
            os.replace(path, out / path.name)
    except Exception as err:  # noqa: BLE001 - re-raised below; `out` is emptied first (it was empty)
        for path in out.iterdir():
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        if made:
            out.rmdir()
        err = as_os_error(err, out)
        if isinstance(err, OSError):
            raise ExportWriteError(f"out={out}: could not write the export: {failure_reason(err)}; nothing of it "
                                   "was left there") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
