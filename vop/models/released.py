"""The VoP authors' released checkpoints (and other OpenAI-format CLIP state dicts) into our model.

Layouts accepted (`torch.save` dicts, read with `weights_only=True`: plain tensors only):
- ModelScope's (docs/released.md): `{'state_dict': {...}}` of a DataParallel model,
  every key `module.` + the model's own `state_dict()` names:
  - `clip.<OpenAI CLIP name>`: the complete (possibly tuned) CLIP; the series file
    (`VoPSE_msrvtt9k.pth`: bias / proj / partial) holds only these;
  - for VoP, `visual_prompt_learner.visual_prompts` [L, 1, n, W] and
    `text_prompt_learner.text_prompts` [L, 8, W_t], plus `image_encoder.*` / `text_encoder.*`:
    duplicates of CLIP tensors (the encoder modules hold references to CLIP's parts). Each must
    equal its `clip.` tensor, or the file is refused naming it.
- a plain OpenAI-format state dict (`module.` prefix optional), with the two prompt tensors for VoP.
- the DGL authors' `*_ckpt.best.pth.tar` (their main.py: the model under 'state_dict', beside the
  optimizer's state): `clip.*` as above plus DGL's tensors, renamed by vop/models/released_dgl.py.
Anything else is refused by name. The file's first bytes are checked before torch reads it: a zip
archive (torch.save's format) or a pickle of protocol 2+ (torch's legacy format), nothing else.
"""
from __future__ import annotations

from pathlib import Path

import torch

from vop.errors import UserError
from vop.models.clip import CLIPVideoModel
from vop.models.convert import ConversionError, openai_to_hf, strip_prefix
from vop.models.released_dgl import is_dgl, split_dgl
from vop.models.tensors import copy_strict

SUFFIXES = (".pth", ".pt", ".bin", ".pth.tar")  # .pth.tar: the DGL authors' checkpoints
# torch.save's zip archive, or a pickle (protocol 2..5) for torch's legacy format.
MAGICS = (b"PK\x03\x04",) + tuple(bytes([0x80, p]) for p in range(2, 6))
VIDEO_PROMPTS = "visual_prompt_learner.visual_prompts"
TEXT_PROMPTS = "text_prompt_learner.text_prompts"
CLIP_PREFIX = "clip."
# ModelScope's encoder modules: attribute prefix -> where the same tensor lives under `clip.`.
DUPLICATES = {"image_encoder.": "clip.visual.", "text_encoder.": "clip."}


class ReleasedCheckpointError(UserError, ValueError):
    """A released-format file that does not fit the configured model or method."""


def is_released(path: str | Path) -> bool:
    return Path(path).name.endswith(SUFFIXES)


def check_magic(path: str | Path) -> None:
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(MAGICS):
        raise ReleasedCheckpointError(f"{path} is not a PyTorch file (it starts with {head!r}, neither a zip "
                                      "archive as torch.save writes nor a pickle)")


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise ReleasedCheckpointError(f"released checkpoint not found: {path}")
    check_magic(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError (objects besides tensors), a truncated or foreign file
        raise ReleasedCheckpointError(
            f"{path} cannot be read as a state dict of tensors: it holds pickled Python objects besides tensors, "
            "or it is truncated or not a PyTorch file. vop never unpickles objects from a checkpoint; load it "
            "once where you trust it and re-save only its tensors (torch.save(state_dict, ...))") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReleasedCheckpointError(f"{path}: expected a state dict of tensors")
    return strip_prefix(state)


def check_duplicates(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Drop ModelScope's `image_encoder.*` / `text_encoder.*` copies after checking each equals its
    `clip.` tensor (a differing copy means the file is not what ModelScope would load)."""
    out = {}
    for name, value in state.items():
        alias = next((p for p in DUPLICATES if name.startswith(p)), None)
        if alias is None:
            out[name] = value
            continue
        original = DUPLICATES[alias] + name[len(alias):]
        if original not in state:
            raise ReleasedCheckpointError(f"{source}: {name!r} duplicates {original!r}, which the file lacks")
        if state[original].shape != value.shape or not torch.equal(state[original], value):
            raise ReleasedCheckpointError(f"{source}: {name!r} differs from {original!r} (ModelScope's encoders "
                                          "share CLIP's tensors, so the two must be equal)")
    return out


def unwrap_modelscope(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """ModelScope layout -> plain OpenAI names + prompt tensors; a plain state dict passes unchanged."""
    if not any(k.startswith(CLIP_PREFIX) for k in state):
        return state
    state = check_duplicates(state, source)
    unknown = [k for k in state if not k.startswith(CLIP_PREFIX) and k not in (VIDEO_PROMPTS, TEXT_PROMPTS)]
    if unknown:
        raise ReleasedCheckpointError(f"{source}: unknown tensors {unknown[:5]} ({len(unknown)}) beside the "
                                      "`clip.` weights; known: clip.*, image_encoder.*, text_encoder.*, "
                                      f"{VIDEO_PROMPTS}, {TEXT_PROMPTS}")
    return {k[len(CLIP_PREFIX):] if k.startswith(CLIP_PREFIX) else k: v for k, v in state.items()}


def split_state(state: dict[str, torch.Tensor], video_layers: list[int] | None = None,
                source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """File tensors -> (HF CLIP tensors, hook tensors named as on `model.hooks`).

    `video_layers`: the layers the file's video prompts belong to, in order (default 0..L-1)."""
    hooks: dict[str, torch.Tensor] = {}
    if is_dgl(state):
        state, hooks = split_dgl(state, source, ReleasedCheckpointError)
    state = unwrap_modelscope(state, source)
    if VIDEO_PROMPTS in state:
        video = state.pop(VIDEO_PROMPTS)  # [L, 1, n, W] (shared by all frames) or [L, T, n, W]
        layers = list(range(video.shape[0])) if video_layers is None else list(video_layers)
        if len(layers) != video.shape[0]:
            raise ReleasedCheckpointError(f"{source}: {VIDEO_PROMPTS} holds {video.shape[0]} layers of prompts, "
                                          f"method.tuner.video_layers has {len(layers)}")
        for layer, prompts in zip(layers, video):
            hooks[f"video_prompts.{layer}"] = prompts[0] if prompts.shape[0] == 1 else prompts
    if TEXT_PROMPTS in state:
        hooks["text_prompts"] = state.pop(TEXT_PROMPTS)  # [L, 8, W_t]
    try:
        return openai_to_hf(state), hooks
    except ConversionError as err:
        raise ReleasedCheckpointError(f"{source}: {err.args[0]}") from err


def load_released(model: CLIPVideoModel, path: str | Path) -> None:
    """Load every CLIP tensor and the method's new tensors; anything missing or extra is an error."""
    layers = getattr(model.hooks, "video_layers", None)
    clip_state, hook_state = split_state(read_state(path), layers, str(path))
    missing, unexpected = model.clip.load_state_dict(clip_state, strict=False)
    if missing or unexpected:
        raise ReleasedCheckpointError(f"{path}: CLIP tensors missing {missing[:5]}, unexpected {unexpected[:5]} "
                                      "for the configured model (is model= the checkpoint's backbone?)")
    copy_strict(dict(model.hooks.named_parameters()), hook_state, f"{path} (method tensors)",
                hint=" (is method= the checkpoint's method?)", error=ReleasedCheckpointError)
