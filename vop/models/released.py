"""The VoP authors' released checkpoints (and other OpenAI-format CLIP state dicts) into our model.

The files are pickled `torch.save` dicts: OpenAI-format CLIP weights, usually with DataParallel's
`module.` prefix, and for VoP the prompt tensors `visual_prompt_learner.visual_prompts`
[L, 1, n, W] and `text_prompt_learner.text_prompts` [L, 8, W_t]. They are read with
`weights_only=True` (plain tensors only, no arbitrary objects) and must hold every CLIP tensor.
"""
from __future__ import annotations

from pathlib import Path

import torch

from vop.errors import UserError
from vop.models.clip import CLIPVideoModel
from vop.models.tensors import copy_strict
from vop.models.convert import openai_to_hf, strip_prefix

SUFFIXES = (".pth", ".pt", ".bin")
VIDEO_PROMPTS = "visual_prompt_learner.visual_prompts"
TEXT_PROMPTS = "text_prompt_learner.text_prompts"


class ReleasedCheckpointError(UserError, ValueError):
    """A released-format file that does not fit the configured model or method."""


def is_released(path: str | Path) -> bool:
    return Path(path).suffix in SUFFIXES


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise ReleasedCheckpointError(f"released checkpoint not found: {path}")
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


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """OpenAI-format file -> (HF CLIP tensors, hook tensors named as on `model.hooks`)."""
    state = dict(state)
    hooks: dict[str, torch.Tensor] = {}
    if VIDEO_PROMPTS in state:
        video = state.pop(VIDEO_PROMPTS)  # [L, 1, n, W] (shared by all frames) or [L, T, n, W]
        for i, layer in enumerate(video):
            hooks[f"video_prompts.{i}"] = layer[0] if layer.shape[0] == 1 else layer
    if TEXT_PROMPTS in state:
        hooks["text_prompts"] = state.pop(TEXT_PROMPTS)  # [L, 8, W_t]
    return openai_to_hf(state), hooks


def load_released(model: CLIPVideoModel, path: str | Path) -> None:
    """Load every CLIP tensor and the method's new tensors; anything missing or extra is an error."""
    clip_state, hook_state = split_state(read_state(path))
    missing, unexpected = model.clip.load_state_dict(clip_state, strict=False)
    if missing or unexpected:
        raise ReleasedCheckpointError(f"{path}: CLIP tensors missing {missing[:5]}, unexpected {unexpected[:5]} "
                                      "for the configured model (is model= the checkpoint's backbone?)")
    copy_strict(dict(model.hooks.named_parameters()), hook_state, f"{path} (method tensors)",
                hint=" (is method= the checkpoint's method?)", error=ReleasedCheckpointError)
