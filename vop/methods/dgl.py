"""DGL: dynamic global-local prompt tuning (Yang et al., AAAI 2024), as the authors' released code computes it.

Source: github.com/knightyxp/DGL, `modules/clip.py` (prompt generation, global prompts, global-local
video attention, read-outs) and `params.py` / `scripts/msrvtt.sh` (defaults). CLIP stays frozen.
Differences from the released code are listed in docs/methods.md ("DGL").

- Prompts: every layer k of both towers gets its text prompts and frame (local) prompts from the
  shared latent space (vop/methods/dgl_latent.py).
- Vision: after the pre-LayerNorm, each frame's `local` prompts go right after its CLS token (no
  positional embedding), and `global_prompts` learned tokens are put in front of the whole video:
  the video is ONE sequence [G global, T x (CLS, local, patches)]. Before every later layer the local
  prompts are replaced by that layer's; the global prompts carry their outputs from layer to layer.
  Global-local attention in every block (the block's own frozen attention weights): a frame's tokens
  attend to the global prompts and to their own frame; the global prompts attend to themselves and
  to every token of every frame. The MLP is applied to every token.
- Text: token + positional embeddings of the caption's L tokens, then `text_prompts / 2` prefix
  prompts after SOT and as many suffix prompts after the L caption slots (no positional embedding);
  every later layer replaces them with its own; causal mask over the whole sequence; read at the
  end-of-text token (shifted by the prefix). Under the causal mask the suffix, after every caption
  slot, never reaches the read-out.
- Read-out (`readout`): `global_prompt0` (the authors' default: the first global prompt),
  `average_global_prompt`, `average_frame_cls_token`, `average_global_prompt_and_frame_cls_token`:
  means of the post-LayerNorm tokens (the projection is linear, so the same as the released mean of
  projected tokens), one vector per video.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vop.errors import ConfigError
from vop.methods.base import TuningMethod
from vop.methods.dgl_latent import LATENT_SPACES, make_latent, uniform_init_bound
from vop.models.clip import CLIPVideoModel
from vop.models.hooks import TowerHooks, causal_mask

READOUTS = ("global_prompt0", "average_global_prompt", "average_frame_cls_token",
            "average_global_prompt_and_frame_cls_token")


def attend(attn: nn.Module, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """HF CLIPAttention's weights, queries from `query` [N, Lq, W], keys and values from `context` [N, Lk, W]."""
    n, lq, w = query.shape
    heads = attn.num_heads
    q = attn.q_proj(query).view(n, lq, heads, -1).transpose(1, 2)  # [N, h, Lq, d]
    k, v = (proj(context).view(n, context.shape[1], heads, -1).transpose(1, 2) for proj in (attn.k_proj, attn.v_proj))
    out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)  # [N, h, Lq, d]
    return attn.out_proj(out.transpose(1, 2).reshape(n, lq, w))


class DGLHooks(TowerHooks):
    """DGL's latent space and global prompts, and how the towers' layer loops use them.

    Vision layout between blocks: x [B, G + T * S, W], the G global prompts first, then frame t's
    S = 1 + local + patches tokens at G + t * S (the order of tokens does not change the result:
    there is no positional embedding after the input)."""

    def __init__(self, model: CLIPVideoModel, latent: str, text_prompts: int, local_prompts: int,
                 global_prompts: int, frames: int, readout: str):
        super().__init__()
        v, t = model.clip.config.vision_config, model.clip.config.text_config
        if v.num_hidden_layers != t.num_hidden_layers:
            raise ConfigError(f"DGL shares one latent space per layer between the towers: the vision tower has "
                              f"{v.num_hidden_layers} layers, the text tower {t.num_hidden_layers}")
        self.depth, self.frames, self.readout = v.num_hidden_layers, frames, readout
        self.local, self.num_global = local_prompts, global_prompts
        self.prefix = text_prompts // 2
        self.suffix = text_prompts - self.prefix
        bound = uniform_init_bound(v.patch_size, v.hidden_size)
        self.latent = make_latent(latent, self.depth, v.hidden_size, t.hidden_size, text_prompts, local_prompts,
                                  frames, bound)
        self.global_prompts = nn.Parameter(torch.empty(1, global_prompts, v.hidden_size).uniform_(-bound, bound))

    # ------------------------------------------------------------------ vision tower
    def frame_prompts(self, index: int, b: int, num_frames: int, dtype: torch.dtype) -> torch.Tensor:
        """Layer `index`'s local prompts for B videos of T frames -> [B, T, local, W]."""
        prompts = self.latent(index)[1]  # [frames, local, W] (transformer) or [1, local, W] (linear: any T)
        if prompts.shape[0] == 1:
            prompts = prompts.expand(num_frames, -1, -1)
        elif num_frames > self.frames:
            raise ConfigError(f"DGL has frame prompts for method.tuner.frames={self.frames} frame positions but "
                              f"the video has {num_frames} frames (data.num_frames); raise method.tuner.frames")
        prompts = prompts[:num_frames]  # fewer frames: the first positions
        return prompts.to(dtype).expand(b, -1, -1, -1)

    def vision_input(self, vision: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = vision.pre_layrnorm(x)  # released: the pre-LayerNorm comes before the prompts
        bt, n, w = x.shape
        b = bt // num_frames
        frames = x.view(b, num_frames, n, w)
        local = self.frame_prompts(0, b, num_frames, x.dtype)  # [B, T, local, W]
        frames = torch.cat([frames[:, :, :1], local, frames[:, :, 1:]], dim=2)  # [B, T, S, W]
        glob = self.global_prompts.to(x.dtype).expand(b, -1, -1)  # [B, G, W]
        return torch.cat([glob, frames.reshape(b, -1, w)], dim=1)  # [B, G + T*S, W]

    def split(self, x: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, G + T*S, W] -> (global prompts [B, G, W], frames [B, T, S, W])."""
        b, _, w = x.shape
        return x[:, :self.num_global], x[:, self.num_global:].reshape(b, num_frames, -1, w)

    def vision_layer(self, index: int, layer: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        glob, frames = self.split(x, num_frames)
        b, t, s, w = frames.shape
        if index > 0:  # this layer's local prompts replace the previous layer's outputs in their slots
            local = self.frame_prompts(index, b, t, x.dtype)
            frames = torch.cat([frames[:, :, :1], local, frames[:, :, 1 + self.local:]], dim=2)
            x = torch.cat([glob, frames.reshape(b, t * s, w)], dim=1)
        h_glob, h_frames = layer.layer_norm1(glob), layer.layer_norm1(frames)  # [B, G, W], [B, T, S, W]
        g = self.num_global
        # Local: each frame's tokens see the global prompts and their own frame.
        context = torch.cat([h_glob.unsqueeze(1).expand(-1, t, -1, -1), h_frames], dim=2)  # [B, T, G+S, W]
        local_out = attend(layer.self_attn, h_frames.reshape(b * t, s, w), context.reshape(b * t, g + s, w))
        # Global: the global prompts see themselves and every frame's tokens.
        global_out = attend(layer.self_attn, h_glob, torch.cat([h_glob, h_frames.reshape(b, t * s, w)], dim=1))
        x = x + torch.cat([global_out, local_out.reshape(b, t * s, w)], dim=1)
        return x + layer.mlp(layer.layer_norm2(x))

    def pool_vision(self, vision: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        glob, frames = self.split(x, num_frames)
        cls = frames[:, :, 0]  # [B, T, W]
        tokens = {"global_prompt0": glob[:, :1], "average_global_prompt": glob, "average_frame_cls_token": cls,
                  "average_global_prompt_and_frame_cls_token": torch.cat([glob, cls], dim=1)}[self.readout]
        video = vision.post_layernorm(tokens).mean(dim=1)  # [B, W]
        return video.repeat_interleave(num_frames, dim=0)  # [B*T, W]: every frame carries its video's feature

    # ------------------------------------------------------------------ text tower
    def with_prompts(self, index: int, x: torch.Tensor, caption: slice) -> torch.Tensor:
        """[SOT, prefix, caption slots, suffix] with layer `index`'s prompts; `caption` selects x's caption slots."""
        prompts = self.latent(index)[0].to(x.dtype).expand(x.shape[0], -1, -1)  # [B, p + s, W_t]
        return torch.cat([x[:, :1], prompts[:, :self.prefix], x[:, caption], prompts[:, self.prefix:]], dim=1)

    def embed_text(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        embeddings = model.clip.text_model.embeddings
        length = input_ids.shape[1]
        x = embeddings.token_embedding(input_ids) + embeddings.position_embedding.weight[:length]  # [B, L, W]
        return self.with_prompts(0, x, slice(1, None))  # [B, L + p + s, W]: prompts get no position

    def text_layer(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if index > 0:
            x = self.with_prompts(index, x, slice(1 + self.prefix, x.shape[1] - self.suffix))
        return layer(x, causal_mask(x))

    def pool_text(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        return x[torch.arange(x.shape[0], device=x.device), eot + self.prefix]


class DGLTuning(TuningMethod):
    """DGL; every knob is a key of `method.tuner` (configs/method/dgl.yaml, defaults of the authors' params.py)."""

    def __init__(self, latent: str = "transformer", text_prompts: int = 8, local_prompts: int = 4,
                 global_prompts: int = 4, frames: int = 12, readout: str = "global_prompt0",
                 prompt_decay: bool = True):
        if latent not in LATENT_SPACES:
            raise ConfigError(f"DGL: method.tuner.latent={latent!r}, expected one of {LATENT_SPACES}")
        if readout not in READOUTS:
            raise ConfigError(f"DGL: method.tuner.readout={readout!r}, expected one of {READOUTS}")
        for name, value in (("text_prompts", text_prompts), ("local_prompts", local_prompts),
                            ("global_prompts", global_prompts), ("frames", frames)):
            if value < 1:
                raise ConfigError(f"DGL: method.tuner.{name}={value} must be at least 1")
        self.latent, self.readout, self.prompt_decay = latent, readout, prompt_decay
        self.lengths = dict(text_prompts=text_prompts, local_prompts=local_prompts, global_prompts=global_prompts,
                            frames=frames)

    def make_hooks(self, model: CLIPVideoModel) -> DGLHooks:
        return DGLHooks(model, self.latent, readout=self.readout, **self.lengths)

    def inert_parameters(self, model: CLIPVideoModel) -> int:
        """`linear`: the suffix map. Its text prompts follow every caption slot, so under the causal mask
        they never reach the read-out (in `transformer` their latent tokens still shape the others)."""
        hooks = model.hooks
        if isinstance(hooks, DGLHooks) and self.latent == "linear":
            return sum(p.numel() for p in hooks.latent.suffix.parameters())
        return 0

    def no_decay(self, name: str, param: nn.Parameter) -> bool:
        # Released (utils/optimization.py): weight decay on every new tensor whose name lacks "bias"
        # (prompts and embeddings included); prompt_decay=false exempts the prompt tensors.
        if ("prompts" in name or "embedding" in name) and not self.prompt_decay:
            return True
        return super().no_decay(name, param)
