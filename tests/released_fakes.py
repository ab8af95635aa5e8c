"""Files laid out as the VoP authors' released ones, made from tiny torch modules (never typed key lists).

`ModelScopeVoP` / `ModelScopeSeries` copy the attribute structure of ModelScope's `VoP` and
`VideoTextRetrievalModelSeries` model classes (README "Released checkpoints"): `clip` is an
OpenAI-architecture CLIP (open_clip's model code, which uses OpenAI's tensor names), the prompt
learners hold the prompt tensors, and the encoders hold *references* to CLIP's parts, so that
`state_dict()` lists those tensors twice, exactly as the released files do. A file is written as
ModelScope's checkpoints are: `torch.save({'state_dict': {'module.' + name: tensor}})`.

`plain_text_features` / `plain_video_features` are an independent forward of the released model,
written from the reference description in plain torch on these modules' OpenAI-format tensors (no
project code), to compare the project's hooked HF model against. `plain_test_metrics` evaluates it
on a config's test split (frames and tokens prepared by the project's data code, ranks by brute
force), to compare `eval.py ckpt=<released file>` and `eval.py modelscope=<folder>` against.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from tests.helpers import CONFIG_DIR
from vop.data.gpu_transforms import VideoTransform
from vop.data.split import Split
from vop.data.tokenizer import tokenize
from vop.engine.assembly import eval_loader, load_splits

SOT, EOT = 49406, 49407  # CLIP's start- and end-of-text token ids


def every_eot_position(length: int) -> torch.Tensor:
    """Token ids [length - 1, length]: row r has its EOT at index r + 1, random words, zero padding
    (a released model's read-out must be right wherever a caption ends)."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.zeros(length - 1, length, dtype=torch.long)
    for row, eot in enumerate(range(1, length)):
        ids[row, 0], ids[row, eot] = SOT, EOT
        ids[row, 1:eot] = torch.randint(300, 40000, (eot - 1,), generator=gen)
    return ids


TINY = OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net


def open_clip_model_module():
    """open_clip's `model.py` without `import open_clip` (whose __init__ needs torchvision, which does
    not import here). torchvision is only used by its ResNet towers: a stub stands in for it."""
    import transformers  # noqa: F401  (open_clip imports it; imported under the stubs it fails)

    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open_clip_torch is not installed")
    package = types.ModuleType("open_clip")
    package.__path__ = list(spec.submodule_search_locations)
    misc = types.ModuleType("torchvision.ops.misc")
    misc.FrozenBatchNorm2d = torch.nn.BatchNorm2d
    stubs = {"open_clip": package, "torchvision": types.ModuleType("torchvision"),
             "torchvision.ops": types.ModuleType("torchvision.ops"), "torchvision.ops.misc": misc}
    with mock.patch.dict(sys.modules, stubs):
        return importlib.import_module("open_clip.model")


def openai_clip(layers: int | None = None, seed: int = 1) -> nn.Module:
    """open_clip's OpenAI-architecture CLIP (QuickGELU) with the tiny model's shapes, random weights."""
    oc = open_clip_model_module()
    v, t = TINY.vision, TINY.text
    vision = oc.CLIPVisionCfg(layers=layers or v.num_hidden_layers, width=v.hidden_size,
                              head_width=v.hidden_size // v.num_attention_heads, patch_size=v.patch_size,
                              image_size=v.image_size, mlp_ratio=v.intermediate_size / v.hidden_size)
    text = oc.CLIPTextCfg(context_length=t.max_position_embeddings, vocab_size=t.vocab_size, width=t.hidden_size,
                          heads=t.num_attention_heads, layers=layers or t.num_hidden_layers,
                          mlp_ratio=t.intermediate_size / t.hidden_size)
    torch.manual_seed(seed)
    model = oc.CLIP(TINY.projection_dim, vision, text, quick_gelu=True).eval()
    with torch.no_grad():  # make every tensor non-trivial (open_clip zero-inits some biases)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


class PromptLearner(nn.Module):
    def __init__(self, name: str, prompts: torch.Tensor):
        super().__init__()
        self.register_parameter(name, nn.Parameter(prompts))


class ImageEncoder(nn.Module):
    """ModelScope's ImageEncoder: attributes referencing CLIP's visual parts."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        visual = clip.visual
        self.conv1, self.class_embedding, self.positional_embedding = visual.conv1, visual.class_embedding, \
            visual.positional_embedding
        self.ln_pre, self.transformer, self.ln_post, self.proj = visual.ln_pre, visual.transformer, visual.ln_post, \
            visual.proj


class TextEncoder(nn.Module):
    """ModelScope's TextEncoder: attributes referencing CLIP's text parts."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.transformer, self.token_embedding = clip.transformer, clip.token_embedding
        self.positional_embedding, self.ln_final = clip.positional_embedding, clip.ln_final
        self.text_projection = clip.text_projection


class ModelScopeVoP(nn.Module):
    """The attribute structure of ModelScope's `VoP` model (its state_dict is VoP_msrvtt9k.pth's)."""

    def __init__(self, clip: nn.Module, vp_tokens: int = 8, prefix: int = 4, suffix: int = 4, seed: int = 2):
        super().__init__()
        self.clip = clip
        gen = torch.Generator().manual_seed(seed)
        width, text_width = clip.visual.ln_post.weight.shape[0], clip.ln_final.weight.shape[0]
        self.vpt_layers = list(range(len(clip.visual.transformer.resblocks)))
        self.tpt_layers = list(range(len(clip.transformer.resblocks)))
        self.prefix, self.suffix, self.vp_tokens = prefix, suffix, vp_tokens
        self.visual_prompt_learner = PromptLearner("visual_prompts", torch.randn(
            len(self.vpt_layers), 1, vp_tokens, width, generator=gen) * 0.5)
        self.image_encoder = ImageEncoder(clip)
        self.text_prompt_learner = PromptLearner("text_prompts", torch.randn(
            len(self.tpt_layers), prefix + suffix, text_width, generator=gen) * 0.5)
        self.text_encoder = TextEncoder(clip)


class ModelScopeSeries(nn.Module):
    """ModelScope's `VideoTextRetrievalModelSeries` (bias / proj / partial): a whole tuned CLIP."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip


def save_released(module: nn.Module, path: Path, edit=None) -> Path:
    """As the authors saved them: a DataParallel model's state_dict under 'state_dict'."""
    state = {f"module.{k}": v.detach().clone() for k, v in module.state_dict().items()}
    if edit is not None:
        edit(state)
    torch.save({"state_dict": state, "epoch": 5}, path)
    return path


# ---------------------------------------------------------------------- independent forward
def layer_norm(x: torch.Tensor, ln: nn.Module) -> torch.Tensor:
    return F.layer_norm(x, ln.weight.shape, ln.weight, ln.bias, eps=1e-5)


def block(x: torch.Tensor, blk: nn.Module, heads: int, causal: bool) -> torch.Tensor:
    """One OpenAI CLIP residual block on x [B, L, W] from its OpenAI-format tensors."""
    b, length, w = x.shape
    d = w // heads
    q, k, v = (layer_norm(x, blk.ln_1) @ blk.attn.in_proj_weight.T + blk.attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, length, heads, d).transpose(1, 2) for t in (q, k, v))  # [B, h, L, d]
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if causal:
        scores = scores.masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), float("-inf"))
    attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, length, w)
    x = x + attn @ blk.attn.out_proj.weight.T + blk.attn.out_proj.bias
    h = layer_norm(x, blk.ln_2) @ blk.mlp.c_fc.weight.T + blk.mlp.c_fc.bias
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU
    return x + h @ blk.mlp.c_proj.weight.T + blk.mlp.c_proj.bias


@torch.no_grad()
def plain_text_features(m: ModelScopeVoP, ids: torch.Tensor, heads: int, readout: str = "released",
                        layers: list[int] | None = None) -> torch.Tensor:
    """The released text path: prefix after SOT and suffix before the last slot at every listed layer,
    positions added once at layer 0, prompt outputs removed before the next listed layer and kept
    after the last layer; read at EOT + 8 (`released`) or, prompts removed, at the EOT (`eot`)."""
    clip, p, s = m.clip, m.prefix, m.suffix
    layers = m.tpt_layers if layers is None else layers
    prompts = m.text_prompt_learner.text_prompts  # [len(layers), p + s, W]
    x = clip.token_embedding.weight[ids]  # [B, 69, W]
    depth = len(clip.transformer.resblocks)
    for i in range(depth):
        if i in layers:
            pr = prompts[layers.index(i)].expand(len(ids), -1, -1)
            x = torch.cat([x[:, :1], pr[:, :p], x[:, 1:]], dim=1)
            x = torch.cat([x[:, :-1], pr[:, p:], x[:, -1:]], dim=1)
        if i == 0:
            x = x + clip.positional_embedding
        x = block(x, clip.transformer.resblocks[i], heads, causal=True)
        if i + 1 in layers or (readout == "eot" and i == depth - 1):
            x = torch.cat([x[:, :1], x[:, 1 + p: x.shape[1] - 1 - s], x[:, -1:]], dim=1)
    x = layer_norm(x, clip.ln_final)
    read = ids.argmax(dim=-1) + (p + s if readout == "released" else 0)
    return F.normalize(x[torch.arange(len(ids)), read] @ clip.text_projection, dim=-1)


@torch.no_grad()
def plain_video_features(m: ModelScopeVoP, video: torch.Tensor, heads: int,
                         layers: list[int] | None = None) -> torch.Tensor:
    """The released vision path on video [B, T, 3, H, W]: prompts after CLS at every listed layer
    (pre-LayerNorm at layer 0 after insertion), removed before the next listed layer; CLS read-out,
    mean of the L2-normalised frame features."""
    visual, n = m.clip.visual, m.vp_tokens
    layers = m.vpt_layers if layers is None else layers
    prompts = m.visual_prompt_learner.visual_prompts  # [len(layers), 1, n, W]
    b, t = video.shape[:2]
    x = F.conv2d(video.flatten(0, 1), visual.conv1.weight, stride=visual.conv1.stride)  # [BT, W, g, g]
    x = x.flatten(2).transpose(1, 2)  # [BT, g*g, W]
    x = torch.cat([visual.class_embedding.expand(len(x), 1, -1), x], dim=1) + visual.positional_embedding
    for i, blk in enumerate(visual.transformer.resblocks):
        if i in layers:
            x = torch.cat([x[:, :1], prompts[layers.index(i)].expand(len(x), -1, -1), x[:, 1:]], dim=1)
        if i == 0:
            x = layer_norm(x, visual.ln_pre)
        x = block(x, blk, heads, causal=False)
        # The released loop drops n tokens before every listed layer even when no prompt was inserted
        # yet (layer 0 unlisted: it would drop patches); the project drops prompts only (README).
        if i + 1 in layers and any(j <= i for j in layers):
            x = torch.cat([x[:, :1], x[:, 1 + n:]], dim=1)
    frames = F.normalize(layer_norm(x[:, 0], visual.ln_post) @ visual.proj, dim=-1).view(b, t, -1)
    return F.normalize(frames.mean(dim=1), dim=-1)


# ---------------------------------------------------------------------- independent evaluation
RELEASED_TEXT_LEN = 69  # the released code's caption slots: 77 positions - 8 text prompts


def evaluation_frames(cfg: DictConfig, split: Split) -> torch.Tensor:
    """`split`'s videos as evaluation feeds them: cfg's decoder, data.num_frames and data.test_sampling,
    resized and centre-cropped to the model's size -> [N, T, 3, S, S] in video order."""
    loader = eval_loader(cfg, split, instantiate(cfg.decoder), pin_memory=False, num_workers=0)
    transform = VideoTransform(size=TINY.vision.image_size, train=False)
    batches = [(transform(b["video"]), b["index"]) for b in loader]
    frames, index = torch.cat([f for f, _ in batches]), torch.cat([i for _, i in batches])
    return frames[index.argsort()]


def brute_force_metrics(sims: torch.Tensor, caption_video: list[int], prefix: str) -> dict[str, float]:
    """sims [M captions, N videos] -> `prefix/t2v_*` and `prefix/v2t_*`: rank = how many score strictly
    higher; v2t scores a video's captions by their best (X-Pool's rule)."""
    t2v = [int((row > row[v]).sum()) for row, v in zip(sims, caption_video)]
    best = torch.stack([sims[[m for m, v in enumerate(caption_video) if v == g]].amax(0)
                        for g in range(sims.shape[1])])  # [N gallery videos by caption, N query videos]
    v2t = [int((best[:, q] > best[q, q]).sum()) for q in range(sims.shape[1])]
    out = {}
    for name, ranks in (("t2v", np.array(t2v) + 1), ("v2t", np.array(v2t) + 1)):
        out.update({f"{prefix}/{name}_R@{k}": 100.0 * float(np.mean(ranks <= k)) for k in (1, 5, 10)})
        out.update({f"{prefix}/{name}_MdR": float(np.median(ranks)), f"{prefix}/{name}_MnR": float(np.mean(ranks))})
    return out


def plain_test_metrics(m: ModelScopeVoP, cfg: DictConfig, readout: str = "released") -> dict[str, float]:
    """`test/*` metrics of the released model `m` on cfg's test split, from the plain forward."""
    split = load_splits(cfg, "test")["test"]
    heads = TINY.text.num_attention_heads
    video = plain_video_features(m, evaluation_frames(cfg, split), heads)  # [N, D]
    ids = tokenize(instantiate(cfg.model.tokenizer), split.captions, RELEASED_TEXT_LEN)
    text = plain_text_features(m, ids, heads, readout)  # [M, D]
    return brute_force_metrics(text @ video.T, split.caption_video, "test")
