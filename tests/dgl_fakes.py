"""DGL's released model in miniature, its checkpoint file, and an independent float64 forward of it.

`ReleasedDGL` has the attribute structure of the DGL authors' `CLIP4Clip` (github.com/knightyxp/DGL,
`modules/clip4clip.py`, `modules/clip.py`): `clip` is an OpenAI-architecture CLIP (open_clip's model
code, OpenAI's tensor names) to which DGL's parts are attached under the released attribute names, so
its `state_dict()` is the released file's. `save_dgl_checkpoint` writes it as their `main.py` does.

`reference_text` / `reference_video` are written from the paper's equations and the released code's
structure (its sequence-first layout, token-major frame order and per-frame key loop) in plain torch on
the module's own tensors: no project code. `reference_metrics` evaluates them on a config's test split.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from tests.released_fakes import TINY, brute_force_metrics, evaluation_frames, openai_clip
from vop.data.tokenizer import tokenize
from vop.engine.assembly import load_splits


class Gelu(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def mlp(width: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", Gelu()),
                                      ("c_proj", nn.Linear(hidden, out))]))


class Block(nn.Module):
    """Their PromptResidualAttentionBlock's attributes."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn, self.ln_1 = nn.MultiheadAttention(width, heads), nn.LayerNorm(width)
        self.mlp, self.ln_2 = mlp(width, 4 * width, width), nn.LayerNorm(width)


class Resblocks(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(Block(width, heads))


class ReleasedDGL(nn.Module):
    """Their model's attributes (loose type, meanP, no time embedding); random, non-trivial tensors."""

    def __init__(self, latent: str = "transformer", text: int = 8, local: int = 4, glob: int = 4, frames: int = 4,
                 seed: int = 5):
        super().__init__()
        self.clip = clip = openai_clip(seed=seed)
        clip_names = {n for n, _ in clip.named_parameters()}
        self.latent, self.text, self.local, self.glob, self.frames = latent, text, local, glob, frames
        w, wt = clip.visual.ln_post.weight.shape[0], clip.ln_final.weight.shape[0]
        self.layers = len(clip.visual.transformer.resblocks)
        patches = clip.visual.positional_embedding.shape[0]
        clip.visual.register_buffer("position_ids", torch.arange(patches).expand(1, -1))
        clip.visual.prompt_embeddings = nn.Parameter(torch.zeros(1, glob, w))
        if latent == "transformer":
            clip.unified_prompt_mlp = mlp(w, 2 * w, wt)
            clip.PromptTransformer = Resblocks(w, max(w // 64, 1))
            clip.unified_prompt_embedding = nn.Embedding(text + local * frames, w * self.layers)
        else:
            clip.visual_prompt_embedding = nn.Parameter(torch.zeros(1, local, self.layers * w))
            clip.prefix_text_prompt_proj_layer = nn.Linear(w, wt)
            clip.postfix_text_prompt_proj_layer = nn.Linear(w, wt)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # every DGL tensor non-trivial (zero biases would hide a swapped mapping)
            for name, p in self.named_parameters():
                if name[len("clip."):] not in clip_names:
                    p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.ndim > 1 else 0.1)
                            + (1.0 if name.endswith(("ln_1.weight", "ln_2.weight")) else 0.0))


def save_dgl_checkpoint(module: ReleasedDGL, path: Path, edit=None) -> Path:
    """As their main.py: a DDP model's state_dict (`module.` names) beside the optimizer's and scaler's states."""
    state = {f"module.{k}": v.detach().clone() for k, v in module.state_dict().items()}
    if edit is not None:
        edit(state)
    new = [p for n, p in module.named_parameters() if any(  # their args.new_added_modules (+ the linear ones)
        m in n for m in ("PromptTransformer", "unified_prompt", "prompt_embeddings", "visual_prompt_embedding",
                         "text_prompt_proj_layer"))]
    optimizer = torch.optim.AdamW([{"params": new, "lr_mult": 1.0, "decay_mult": 1.0}], lr=2e-3,
                                  betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
    for p in new:
        p.grad = torch.zeros_like(p)
    before = [p.detach().clone() for p in new]
    optimizer.step()  # moment tensors in its state, as a saved run has
    with torch.no_grad():
        for p, b in zip(new, before):
            p.copy_(b)
    torch.save({"epoch": 5, "global_step": 700, "arch": "CLIp4Clip", "state_dict": state, "best_acc1": 45.8,
                "optimizer": optimizer.state_dict(),
                "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                           "_growth_tracker": 0}}, path)
    return path


# ---------------------------------------------------------------------- independent forward (float64)
def ln(x: torch.Tensor, m: nn.Module) -> torch.Tensor:
    return F.layer_norm(x, m.weight.shape, m.weight.double(), m.bias.double(), eps=1e-5)


def mha(q_in: torch.Tensor, kv_in: torch.Tensor, attn: nn.MultiheadAttention, heads: int,
        causal: bool = False) -> torch.Tensor:
    """nn.MultiheadAttention's computation, sequence first: q_in [Lq, N, W], kv_in [Lk, N, W]."""
    lq, n, w = q_in.shape
    wq, wk, wv = attn.in_proj_weight.double().chunk(3)
    bq, bk, bv = attn.in_proj_bias.double().chunk(3)
    d = w // heads
    q = (q_in @ wq.T + bq).reshape(lq, n * heads, d).transpose(0, 1)  # [N*h, Lq, d]
    k = (kv_in @ wk.T + bk).reshape(-1, n * heads, d).transpose(0, 1)
    v = (kv_in @ wv.T + bv).reshape(-1, n * heads, d).transpose(0, 1)
    scores = q @ k.transpose(1, 2) / math.sqrt(d)
    if causal:
        scores = scores + torch.full((lq, lq), float("-inf"), dtype=scores.dtype).triu(1)
    out = (scores.softmax(-1) @ v).transpose(0, 1).reshape(lq, n, w)
    return out @ attn.out_proj.weight.double().T + attn.out_proj.bias.double()


def feed_forward(x: torch.Tensor, blk: nn.Module) -> torch.Tensor:
    h = ln(x, blk.ln_2) @ blk.mlp.c_fc.weight.double().T + blk.mlp.c_fc.bias.double()
    h = h * torch.sigmoid(1.702 * h)
    return x + h @ blk.mlp.c_proj.weight.double().T + blk.mlp.c_proj.bias.double()


def self_block(x: torch.Tensor, blk: nn.Module, heads: int, causal: bool = False) -> torch.Tensor:
    h = ln(x, blk.ln_1)
    return feed_forward(x + mha(h, h, blk.attn, heads, causal), blk)


@torch.no_grad()
def reference_prompts(m: ReleasedDGL) -> tuple[torch.Tensor, torch.Tensor]:
    """(text prompts [K, p+s, W_t], frame prompts [K, T or 1, local, W]) for all K layers at once:
    P = E_k (per layer), transformer: [text; frame] = Block(E_k), text = MLP(.); linear: text = [A P; B P]."""
    clip, k = m.clip, m.layers
    w = clip.visual.ln_post.weight.shape[0]
    if m.latent == "transformer":
        e = clip.unified_prompt_embedding.weight.double()
        e = e.view(-1, k, w)  # [tokens, K, W]: sequence first, the K layers as the batch
        out = self_block(e, clip.PromptTransformer.resblocks[0], max(w // 64, 1)).transpose(0, 1)  # [K, tokens, W]
        mlp_ = clip.unified_prompt_mlp
        h = out[:, :m.text] @ mlp_.c_fc.weight.double().T + mlp_.c_fc.bias.double()
        text = (h * torch.sigmoid(1.702 * h)) @ mlp_.c_proj.weight.double().T + mlp_.c_proj.bias.double()
        return text, out[:, m.text:].reshape(k, m.frames, m.local, w)
    p = clip.visual_prompt_embedding.double().view(m.local, k, w).permute(1, 0, 2)  # [K, local, W]
    pre, post = clip.prefix_text_prompt_proj_layer, clip.postfix_text_prompt_proj_layer
    text = torch.cat([p @ pre.weight.double().T + pre.bias.double(), p @ post.weight.double().T + post.bias.double()],
                     dim=1)
    return text, p[:, None]


def global_local_block(x: torch.Tensor, blk: nn.Module, heads: int, glob: int, frames: int) -> torch.Tensor:
    """Their visual block on x [G + S*T, B, W] (token-major, frame-minor): frames attend to
    [global; own frame], the global prompts to [global; all frames]."""
    b, w = x.shape[1], x.shape[2]
    prompts, tokens = ln(x[:glob], blk.ln_1), ln(x[glob:].reshape(-1, frames * b, w), blk.ln_1)  # [S, T*B, W]
    keys = torch.zeros(glob + tokens.shape[0], frames * b, w, dtype=x.dtype)
    for i in range(0, frames * b, b):  # column t*B + b is frame t of video b
        keys[:, i:i + b] = torch.cat([prompts, tokens[:, i:i + b]])
    out_frames = mha(tokens, keys, blk.attn, heads).reshape(-1, b, w)
    out_prompts = mha(prompts, torch.cat([prompts, tokens.reshape(-1, b, w)]), blk.attn, heads)
    return feed_forward(x + torch.cat([out_prompts, out_frames]), blk)


@torch.no_grad()
def reference_video(m: ReleasedDGL, video: torch.Tensor, readout: str = "global_prompt0") -> torch.Tensor:
    """Video [B, T, 3, H, W] -> normalised features [B, D]."""
    visual, heads = m.clip.visual, TINY.vision.num_attention_heads
    _, frame_prompts = reference_prompts(m)
    b, t = video.shape[:2]
    w = visual.ln_post.weight.shape[0]
    x = F.conv2d(video.flatten(0, 1).double(), visual.conv1.weight.double(), stride=visual.conv1.stride)
    x = x.flatten(2).transpose(1, 2)  # [BT, P, W]
    x = torch.cat([visual.class_embedding.double().expand(len(x), 1, -1), x], dim=1) + visual.positional_embedding.double()
    x = ln(x, visual.ln_pre).view(b, t, -1, w)

    def local(k):  # [B, T, local, W]
        p = frame_prompts[k]
        return (p[:t] if p.shape[0] > 1 else p.expand(t, -1, -1)).expand(b, -1, -1, -1)

    x = torch.cat([x[:, :, :1], local(0), x[:, :, 1:]], dim=2).permute(0, 2, 1, 3).reshape(b, -1, w)
    x = torch.cat([visual.prompt_embeddings.double().expand(b, -1, -1), x], dim=1).permute(1, 0, 2)  # [G+S*T, B, W]
    g = m.glob
    for k, blk in enumerate(visual.transformer.resblocks):
        if k > 0:
            rest = x[g:].reshape(-1, t, b, w)  # [S, T, B, W]
            rest = torch.cat([rest[:1], local(k).permute(2, 1, 0, 3), rest[1 + m.local:]])
            x = torch.cat([x[:g], rest.reshape(-1, b, w)])
        x = global_local_block(x, blk, heads, g, t)
    hidden = ln(x.permute(1, 0, 2), visual.ln_post) @ visual.proj.double()  # [B, G + S*T, D]
    cls = hidden[:, g:].reshape(b, -1, t, hidden.shape[-1])[:, 0]  # [B, T, D]
    out = {"global_prompt0": hidden[:, 0], "average_global_prompt": hidden[:, :g].mean(1),
           "average_frame_cls_token": cls.mean(1),
           "average_global_prompt_and_frame_cls_token": torch.cat([hidden[:, :g], cls], 1).mean(1)}[readout]
    return F.normalize(out, dim=-1)


@torch.no_grad()
def reference_text(m: ReleasedDGL, ids: torch.Tensor) -> torch.Tensor:
    """Token ids [B, L] (SOT ... EOT, zero padding) -> normalised features [B, D]."""
    clip, heads = m.clip, TINY.text.num_attention_heads
    text_prompts, _ = reference_prompts(m)
    b, length = ids.shape
    p = m.text // 2
    x = clip.token_embedding.weight.double()[ids] + clip.positional_embedding.double()[:length]
    marks = torch.zeros(b, length + m.text, dtype=torch.long)  # their prompt_token: ids at the caption's places
    marks[:, 0], marks[:, p + 1:p + length] = ids[:, 0], ids[:, 1:]
    for k, blk in enumerate(clip.transformer.resblocks):
        pr = text_prompts[k].expand(b, -1, -1)
        caption = x[:, 1:] if k == 0 else x[:, p + 1:p + length]
        x = torch.cat([x[:, :1], pr[:, :p], caption, pr[:, p:]], dim=1)
        x = self_block(x.transpose(0, 1), blk, heads, causal=True).transpose(0, 1)
    hidden = ln(x, clip.ln_final) @ clip.text_projection.double()
    return F.normalize(hidden[torch.arange(b), marks.argmax(dim=-1)], dim=-1)


def reference_metrics(m: ReleasedDGL, cfg: DictConfig, text_len: int) -> dict[str, float]:
    """`test/*` metrics of the released model `m` on cfg's test split, from the reference forward."""
    split = load_splits(cfg, "test")["test"]
    video = reference_video(m, evaluation_frames(cfg, split), cfg.method.tuner.readout)
    text = reference_text(m, tokenize(instantiate(cfg.model.tokenizer), split.captions, text_len))
    return brute_force_metrics(text @ video.T, split.caption_video, "test")
