"""OpenAI-format CLIP state dicts <-> HF `CLIPModel` state dicts.

OpenAI names (`ViT-B-32.pt`, open_clip, and the VoP authors' checkpoints) differ from HF's in
three ways: names, the fused attention input projection (`in_proj_weight` [3W, W] = q, k, v
stacked; HF has separate q/k/v Linear layers), and the two output projections, stored as
[W, D] matrices that multiply from the right (HF: Linear weights [D, W], hence transposed).
"""
from __future__ import annotations

import re

import torch

from vop.models.torchscript import is_torchscript, read_torchscript_tensors

# OpenAI name -> HF name, for tensors that only need renaming. `{i}` is a block index.
TOWER_PREFIXES = {"visual.transformer.resblocks": "vision_model.encoder.layers",
                  "transformer.resblocks": "text_model.encoder.layers"}
BLOCK_RENAMES = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
RENAMES = {
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight", "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight", "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
TRANSPOSED = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
# Entries of OpenAI's TorchScript state dict that are metadata or derived buffers, not weights.
IGNORED = {"input_resolution", "context_length", "vocab_size", "attn_mask"}
BLOCK_KEY = re.compile(r"^(visual\.transformer\.resblocks|transformer\.resblocks)\.(\d+)\.(.+)$")


class ConversionError(KeyError):
    """A state dict that is not a complete OpenAI-format CLIP."""


def _block_to_hf(tower: str, index: str, rest: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    prefix = f"{TOWER_PREFIXES[tower]}.{index}"
    if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
        kind = rest.rsplit("_", 1)[-1]  # weight | bias
        q, k, v = value.chunk(3, dim=0)  # [3W, ...] -> 3 x [W, ...]
        return {f"{prefix}.self_attn.{n}_proj.{kind}": t.contiguous() for n, t in zip("qkv", (q, k, v))}
    module, param = rest.rsplit(".", 1)
    if module not in BLOCK_RENAMES:
        raise ConversionError(f"unknown OpenAI CLIP tensor {tower}.{index}.{rest}")
    return {f"{prefix}.{BLOCK_RENAMES[module]}.{param}": value}


def openai_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI-format CLIP weights -> `CLIPModel.state_dict()` names and layouts."""
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name in IGNORED or name.endswith(".attn_mask"):
            continue
        if match := BLOCK_KEY.match(name):
            out.update(_block_to_hf(*match.groups(), value))
        elif name in RENAMES:
            out[RENAMES[name]] = value
        elif name in TRANSPOSED:
            out[TRANSPOSED[name]] = value.t().contiguous()
        else:
            raise ConversionError(f"unknown OpenAI CLIP tensor {name!r}")
    return out


def hf_to_openai(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `openai_to_hf` (tests, and exporting weights for OpenAI-format tools)."""
    renames = {hf: oa for oa, hf in RENAMES.items()}
    transposed = {hf: oa for oa, hf in TRANSPOSED.items()}
    blocks = {hf: oa for oa, hf in BLOCK_RENAMES.items()}
    towers = {hf: oa for oa, hf in TOWER_PREFIXES.items()}
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name in renames:
            out[renames[name]] = value
        elif name in transposed:
            out[transposed[name]] = value.t().contiguous()
        elif match := re.match(r"^(.+\.layers)\.(\d+)\.(.+)\.(weight|bias)$", name):
            tower, index, module, kind = match.groups()
            prefix = f"{towers[tower]}.{index}"
            if module.startswith("self_attn.") and module != "self_attn.out_proj":
                if module == "self_attn.q_proj":  # emit the fused tensor once, from q, k and v
                    parts = [state[f"{tower}.{index}.self_attn.{n}_proj.{kind}"] for n in "qkv"]
                    out[f"{prefix}.attn.in_proj_{kind}"] = torch.cat(parts, dim=0)
                continue
            out[f"{prefix}.{blocks[module]}.{kind}"] = value
        else:
            raise ConversionError(f"unknown HF CLIP tensor {name!r}")
    return out


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove DataParallel's `module.` prefix where present."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def read_openai_file(path: str) -> dict[str, torch.Tensor]:
    """OpenAI's `ViT-B-32.pt` (a TorchScript archive, read without running or unpickling its code) or
    a plain state dict saved with torch.save (read with weights_only=True)."""
    if is_torchscript(path):
        return read_torchscript_tensors(path)
    return torch.load(path, map_location="cpu", weights_only=True)
