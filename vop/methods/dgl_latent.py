"""DGL's shared latent space: one source for every layer's text prompts and frame (local) prompts.

Yang et al., "DGL: Dynamic Global-Local Prompt Tuning for Text-Video Retrieval" (AAAI 2024);
structure from the authors' `modules/clip.py` (`CLIP.encode_prompt`), with their tensor names kept
on the modules below so that a released checkpoint maps by renaming only (vop/models/released_dgl.py).

- `transformer` (the authors' default, `--shared_latent_space transformer`): per layer, a learned
  embedding of `text + local * frames` tokens (one `nn.Embedding` row per token holding all layers,
  [tokens, layers * W]) runs through one pre-LayerNorm transformer block shared by all layers (the
  tokens of one layer attend to each other, never to another layer's). The first `text` outputs
  pass an MLP W -> 2W -> W_text and become the text prompts; the rest are the frame prompts, `local`
  per frame position.
- `linear`: per layer, `local` learned vectors are the frame prompts of every frame; two linear
  maps W -> W_text turn them into the text prefix and suffix prompts.
The prompts do not depend on the input: they are functions of these parameters only.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vop.errors import ConfigError

LATENT_SPACES = ("transformer", "linear")


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation, which the authors use in the latent block and the text MLP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def two_layer_mlp(width: int, hidden: int, out: int) -> nn.Sequential:
    """Linear, QuickGELU, Linear; submodules named c_fc / gelu / c_proj, as released."""
    return nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", QuickGELU()),
                                      ("c_proj", nn.Linear(hidden, out))]))


class LatentBlock(nn.Module):
    """A pre-LayerNorm transformer block (no mask) over [N, L, W]: attention, then a 4x MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = two_layer_mlp(width, 4 * width, width)
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


def uniform_init_bound(patch_size: int, width: int) -> float:
    """The authors' (VPT's) xavier-uniform bound for prompt vectors: sqrt(6 / (3 * patch^2 + W))."""
    return (6.0 / (3 * patch_size * patch_size + width)) ** 0.5


class TransformerLatent(nn.Module):
    """`transformer` latent space: layer k -> (text prompts [text, W_t], frame prompts [frames, local, W])."""

    def __init__(self, layers: int, width: int, text_width: int, text: int, local: int, frames: int):
        super().__init__()
        self.layers, self.width, self.text, self.local, self.frames = layers, width, text, local, frames
        # nn.Embedding's own N(0, 1) initialisation, as released (their init leaves it alone).
        self.embedding = nn.Embedding(text + local * frames, layers * width)  # [tokens, layers * W]
        self.block = LatentBlock(width, max(width // 64, 1))  # CLIP's head width 64, as released
        self.text_mlp = two_layer_mlp(width, 2 * width, text_width)

    def forward(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embedding.weight.view(-1, self.layers, self.width)[:, layer]  # [tokens, W]
        out = self.block(tokens[None])[0]  # each layer's tokens attend among themselves
        text = self.text_mlp(out[:self.text])  # [text, W_t]
        return text, out[self.text:].view(self.frames, self.local, self.width)  # [frames, local, W]


class LinearLatent(nn.Module):
    """`linear` latent space: layer k -> (text prompts [2 * local, W_t], frame prompts [1, local, W])."""

    def __init__(self, layers: int, width: int, text_width: int, local: int, bound: float):
        super().__init__()
        self.layers, self.width, self.local = layers, width, local
        self.embedding = nn.Parameter(torch.empty(1, local, layers * width).uniform_(-bound, bound))
        self.prefix = nn.Linear(width, text_width)
        self.suffix = nn.Linear(width, text_width)

    def forward(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        frame = self.embedding.view(self.local, self.layers, self.width)[:, layer]  # [local, W]
        text = torch.cat([self.prefix(frame), self.suffix(frame)])  # [2 * local, W_t]
        return text, frame[None]  # the same prompts for every frame


def make_latent(space: str, layers: int, width: int, text_width: int, text: int, local: int, frames: int,
                bound: float) -> nn.Module:
    if space not in LATENT_SPACES:
        raise ConfigError(f"DGL: method.tuner.latent={space!r}, expected one of {LATENT_SPACES}")
    if space == "linear":
        if text != 2 * local:
            raise ConfigError(f"DGL: latent=linear maps each of the {local} local prompts to one prefix and one "
                              f"suffix text prompt, so method.tuner.text_prompts must be {2 * local} (got {text})")
        return LinearLatent(layers, width, text_width, local, bound)
    return TransformerLatent(layers, width, text_width, text, local, frames)
