"""VoP: text-video co-operative prompt tuning, and its P / C / F variants and combinations.

Basic VoP (as in the authors' released inference code; docs/methods.md):
- vision: every ViT layer gets its own `num_prompts` prompt tokens, inserted right after CLS
  (no positional embedding), run through the block and dropped; the layer-0 prompts are
  inserted before the pre-LayerNorm, so the pre-LN sees them once.
- text: every text layer gets `text_prefix` tokens after SOT and `text_suffix` tokens at the end
  of the padded caption; captions are tokenised to 77 - 8 = 69 tokens (`method.max_text_len`),
  CLIP's positional embeddings are added once at layer 0 after insertion, the causal mask
  covers the prompts, and the prompt outputs are dropped after each layer.
- read-out: the true end-of-text token (default). `readout=released` keeps the last layer's
  prompts and reads position EOT + 8 of that 77-token sequence, as the released code does.

Variants (choices where the paper is silent, see README "Methods"):
- P (`position`): the video prompts of a layer are a [T, n, W] tensor, one set per frame position.
- C (`context`): a layer's video prompts are its learned prompts plus prompts generated from the
  CLS tokens of the video's frames at that layer's input: a small transformer over the T CLS
  tokens (frames see each other) and a linear layer W -> n*W. Layer 0 is never a context layer:
  its CLS input is still the class embedding and carries no frame content.
- F (`split`): layers below K_s run each frame alone (intra-frame); from K_s on, each frame's
  block also attends to the CLS tokens (layer input) of all frames of its video, appended as
  extra tokens and dropped after the block like prompts. No new parameters.
`position` / `context` take `none`, `all` or `inter` (only the inter-frame layers, for F+P, F+C).
"""
from __future__ import annotations

import torch
from torch import nn

from vop.methods.base import TuningMethod
from vop.models.clip import CLIPVideoModel
from vop.models.hooks import TowerHooks, causal_mask

SCOPES = ("none", "all", "inter")
READOUTS = ("eot", "released")


def resolve_split(split: int | float | None, depth: int) -> int | None:
    """K_s from `method.tuner.split`: a layer index in [1, depth-1], or a fraction of the depth."""
    if split is None:
        return None
    if isinstance(split, float) and 0.0 < split < 1.0:
        return min(max(round(split * depth), 1), depth - 1)
    if isinstance(split, int) and not isinstance(split, bool) and 1 <= split < depth:
        return split
    raise ValueError(f"VoP^F: method.tuner.split={split!r} must be a layer index in [1, {depth - 1}] "
                     f"for this {depth}-layer vision tower, or a fraction in (0, 1)")


def scope_layers(scope: str, depth: int, inter: set[int], key: str) -> set[int]:
    if scope not in SCOPES:
        raise ValueError(f"VoP: method.tuner.{key}={scope!r}, expected one of {SCOPES}")
    if scope == "inter" and not inter:
        raise ValueError(f"VoP: method.tuner.{key}=inter needs method.tuner.split (VoP^F's inter-frame layers)")
    return {"none": set(), "all": set(range(depth)), "inter": inter}[scope]


class ContextGenerator(nn.Module):
    """Frame CLS tokens [B, T, W] -> prompts [B, T, n, W]: frames exchange context, then a linear map."""

    def __init__(self, width: int, num_prompts: int, layers: int, heads: int, mlp_ratio: float):
        super().__init__()
        block = nn.TransformerEncoderLayer(width, heads, int(mlp_ratio * width), dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.mixer = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, num_prompts * width)
        nn.init.normal_(self.out.weight, std=0.02 / width ** 0.5)  # small: start close to basic VoP
        nn.init.zeros_(self.out.bias)
        self.num_prompts = num_prompts

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        b, t, w = cls.shape
        return self.out(self.mixer(cls)).view(b, t, self.num_prompts, w)


class VoPHooks(TowerHooks):
    def __init__(self, model: CLIPVideoModel, num_prompts: int, text_prefix: int, text_suffix: int, frames: int,
                 position: set[int], context: set[int], inter: set[int], readout: str, init_std: float,
                 generator: dict):
        super().__init__()
        v, t = model.clip.config.vision_config, model.clip.config.text_config
        self.n, self.prefix, self.suffix, self.frames = num_prompts, text_prefix, text_suffix, frames
        self.position, self.context, self.inter, self.readout = position, context, inter, readout
        self.text_depth, self.max_positions = t.num_hidden_layers, t.max_position_embeddings
        shapes = [(frames, num_prompts, v.hidden_size) if i in position else (num_prompts, v.hidden_size)
                  for i in range(v.num_hidden_layers)]
        self.video_prompts = nn.ParameterList(nn.Parameter(torch.randn(s) * init_std) for s in shapes)
        self.text_prompts = nn.Parameter(torch.randn(t.num_hidden_layers, text_prefix + text_suffix,
                                                     t.hidden_size) * init_std)  # [L, 8, W_t]
        self.generator = ContextGenerator(v.hidden_size, num_prompts, **generator) if context else None

    # ------------------------------------------------------------------ vision tower
    def frame_prompts(self, index: int, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Prompts of vision layer `index` for x [B*T, N, W] -> [B*T, n, W]."""
        bt, _, w = x.shape
        base = self.video_prompts[index]
        if index in self.position:
            if num_frames > self.frames:
                raise ValueError(f"VoP^P has prompts for {self.frames} frame positions (method.tuner.frames) "
                                 f"but the video has {num_frames} frames")
            prompts = base[:num_frames].unsqueeze(0).expand(bt // num_frames, -1, -1, -1)  # [B, T, n, W]
        else:
            prompts = base.expand(bt // num_frames, num_frames, -1, -1)
        if index in self.context:
            prompts = prompts + self.generator(x[:, 0].reshape(-1, num_frames, w))
        return prompts.reshape(bt, self.n, w).to(x.dtype)

    def insert_video(self, index: int, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        prompts = self.frame_prompts(index, x, num_frames)
        return torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1)  # [B*T, 1 + n + N-1, W]

    def vision_input(self, vision: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return vision.pre_layrnorm(self.insert_video(0, x, num_frames))

    def vision_layer(self, index: int, layer: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if index > 0:
            x = self.insert_video(index, x, num_frames)
        extra = 0
        if index in self.inter:
            bt, _, w = x.shape
            cls = x[:, 0].reshape(-1, 1, num_frames, w).expand(-1, num_frames, -1, -1)  # [B, T, T, W]
            x = torch.cat([x, cls.reshape(bt, num_frames, w)], dim=1)  # every frame sees all frames' CLS
            extra = num_frames
        x = layer(x, None)
        return torch.cat([x[:, :1], x[:, 1 + self.n: x.shape[1] - extra]], dim=1)  # prompts dropped

    # ------------------------------------------------------------------ text tower
    def insert_text(self, index: int, x: torch.Tensor) -> torch.Tensor:
        prompts = self.text_prompts[index].to(x.dtype).expand(x.shape[0], -1, -1)  # [B, 8, W]
        return torch.cat([x[:, :1], prompts[:, :self.prefix], x[:, 1:], prompts[:, self.prefix:]], dim=1)

    def embed_text(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1] + self.prefix + self.suffix
        if length > self.max_positions:
            raise ValueError(f"VoP: captions of {input_ids.shape[1]} tokens + {self.prefix + self.suffix} prompts "
                             f"exceed CLIP's {self.max_positions} positions; set method.max_text_len <= "
                             f"{self.max_positions - self.prefix - self.suffix}")
        embeddings = model.clip.text_model.embeddings
        x = self.insert_text(0, embeddings.token_embedding(input_ids))  # [B, L + 8, W]
        return x + embeddings.position_embedding.weight[:length]

    def text_layer(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if index > 0:
            x = self.insert_text(index, x)
        x = layer(x, causal_mask(x))
        if self.readout == "released" and index == self.text_depth - 1:
            return x  # the released read-out indexes the prompted sequence
        return torch.cat([x[:, :1], x[:, 1 + self.prefix: x.shape[1] - self.suffix]], dim=1)

    def pool_text(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        if self.readout == "released":
            eot = eot + self.prefix + self.suffix
        return x[torch.arange(x.shape[0], device=x.device), eot]


class VoP(TuningMethod):
    """VoP and its variants; every knob is a key of `method.tuner` (configs/method/vop*.yaml)."""

    def __init__(self, name: str = "vop", num_prompts: int = 8, text_prefix: int = 4, text_suffix: int = 4,
                 frames: int = 12, split: int | float | None = None, position: str = "none", context: str = "none",
                 readout: str = "eot", init_std: float = 0.02, prompt_decay: bool = False,
                 generator_layers: int = 2, generator_heads: int = 8, generator_mlp_ratio: float = 4.0):
        if readout not in READOUTS:
            raise ValueError(f"VoP: method.tuner.readout={readout!r}, expected one of {READOUTS}")
        self.name, self.split, self.position_scope, self.context_scope = name, split, position, context
        self.num_prompts, self.text_prefix, self.text_suffix, self.frames = num_prompts, text_prefix, text_suffix, frames
        self.readout, self.init_std, self.prompt_decay = readout, init_std, prompt_decay
        self.generator = {"layers": generator_layers, "heads": generator_heads, "mlp_ratio": generator_mlp_ratio}

    def make_hooks(self, model: CLIPVideoModel) -> VoPHooks:
        depth = model.clip.config.vision_config.num_hidden_layers
        k_s = resolve_split(self.split, depth)
        inter = set(range(k_s, depth)) if k_s is not None else set()
        position = scope_layers(self.position_scope, depth, inter, "position")
        context = scope_layers(self.context_scope, depth, inter, "context") - {0}
        if self.context_scope != "none" and not context:
            raise ValueError("VoP^C: no context layer left (layer 0 cannot be one); the model needs >= 2 layers")
        return VoPHooks(model, self.num_prompts, self.text_prefix, self.text_suffix, self.frames, position, context,
                        inter, self.readout, self.init_std, self.generator)

    def no_decay(self, name: str, param: nn.Parameter) -> bool:
        # Prompts opt out of weight decay by default: decay pulls them towards the zero vector,
        # which is not "no prompt" (a zero token still takes part in attention).
        if "_prompts" in name and not self.prompt_decay:
            return True
        return super().no_decay(name, param)
