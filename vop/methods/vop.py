"""VoP: text-video co-operative prompt tuning, and its P / C / F variants and combinations.

Basic VoP (as in the authors' released inference code, docs/methods.md):
- vision: every ViT layer of `video_layers` (default all) gets its own `num_prompts` prompt tokens,
  inserted right after CLS (no positional embedding), run through the block and dropped before
  the next layer of the list (layers between listed ones keep the last inserted prompts, as the
  released code does); the layer-0 prompts are inserted before the pre-LayerNorm.
- text: every layer of `text_layers` (default all; must hold 0) gets `text_prefix` tokens after SOT
  and `text_suffix` tokens before the LAST of the caption's slots (released layout: [SOT, P1-4,
  slots 1-67, S1-4, slot 68] for 69-token captions, `method.max_text_len`); CLIP's positional
  embeddings are added once at layer 0 after insertion, the causal mask covers the prompts.
- read-out `eot` (default): the prompt outputs are dropped after the last layer too and the true
  end-of-text token is read. `released`: the last layer's prompts are kept and position EOT + 8
  of that 77-token sequence is read, as the released code does.
  Both read-outs use the released layout, so a released checkpoint's prompts sit where they were
  trained and the read-out is the only difference. Under the causal mask the suffix prompts reach
  the output only where the read position comes after them: captions filling all 69 slots
  (`eot`), or of 64+ tokens (`released`); see `inert_parameters`.

Variants (choices where the paper is silent, see docs/methods.md):
- P (`position`): the video prompts of a layer are a [T, n, W] tensor, one set per frame position.
- C (`context`): a layer's video prompts are its learned prompts plus prompts generated from the
  CLS tokens of the video's frames at that layer's input: a small transformer over the T CLS
  tokens (frames see each other) and a linear layer W -> n*W. Layer 0 is never a context layer:
  its CLS input is still the class embedding and carries no frame content.
- F (`inter_from`: K_s): layers below K_s run each frame alone (intra-frame); from K_s on, each frame's
  block also attends to the CLS tokens (layer input) of all frames of its video, appended as
  extra tokens and dropped after the block like prompts. No new parameters.
`position` / `context` take `none`, `all` or `inter` (only the inter-frame layers, for F+P, F+C).
- `temporal=true` (not in the paper; off by default): C's generator and F's inter-frame layers
  see the frames' CLS tokens plus a learned, zero-initialised vector per frame position
  (vop/methods/temporal.py). Without it both are blind to frame order, as P is not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vop.errors import ConfigError
from vop.methods.base import TuningMethod
from vop.methods.temporal import TemporalEmbedding
from vop.models.clip import CLIPVideoModel
from vop.models.hooks import TowerHooks, causal_mask

SCOPES = ("none", "all", "inter")
READOUTS = ("eot", "released")


def resolve_inter_from(inter_from: int | float | None, depth: int) -> int | None:
    """K_s, the first inter-frame layer, from `method.tuner.inter_from`: a layer index in [1, depth-1],
    or a fraction of the depth."""
    if inter_from is None:
        return None
    if isinstance(inter_from, float) and 0.0 < inter_from < 1.0:
        return min(max(round(inter_from * depth), 1), depth - 1)
    if isinstance(inter_from, int) and not isinstance(inter_from, bool) and 1 <= inter_from < depth:
        return inter_from
    raise ConfigError(f"VoP^F: method.tuner.inter_from={inter_from!r} must be a layer index in [1, {depth - 1}] "
                      f"for this {depth}-layer vision tower, or a fraction in (0, 1)")


def scope_layers(scope: str, depth: int, inter: set[int], key: str) -> set[int]:
    if scope not in SCOPES:
        raise ConfigError(f"VoP: method.tuner.{key}={scope!r}, expected one of {SCOPES}")
    if scope == "inter" and not inter:
        raise ConfigError(f"VoP: method.tuner.{key}=inter needs method.tuner.inter_from (VoP^F's inter-frame layers)")
    return {"none": set(), "all": set(range(depth)), "inter": inter}[scope]


@dataclass(frozen=True)
class PromptSpec:
    """How many prompt tokens VoP adds and how they start."""
    num_prompts: int  # video prompt tokens per vision layer
    text_prefix: int  # text prompts after SOT, per text layer
    text_suffix: int  # text prompts before the last caption slot, per text layer
    frames: int       # VoP^P frame positions (prompt sets); a video has at most this many frames
    init_std: float


@dataclass(frozen=True)
class PromptLayout:
    """Which layers hold what, resolved against the model's depth (VoPTuning.make_hooks)."""
    video_layers: tuple[int, ...]  # vision layers that insert prompts
    text_layers: tuple[int, ...]   # text layers that insert prompts (0 first, when any)
    position: frozenset[int]       # VoP^P: layers with a prompt set per frame position
    context: frozenset[int]        # VoP^C: layers whose prompts the generator adds to
    inter: frozenset[int]          # VoP^F: layers where every frame attends to all frames' CLS


@dataclass(frozen=True)
class GeneratorSpec:
    """VoP^C's context generator: a small transformer over the frames' CLS tokens."""
    layers: int
    heads: int
    mlp_ratio: float


class ContextGenerator(nn.Module):
    """Frame CLS tokens [B, T, W] -> prompts [B, T, n, W]: frames exchange context, then a linear map."""

    def __init__(self, width: int, num_prompts: int, spec: GeneratorSpec):
        super().__init__()
        block = nn.TransformerEncoderLayer(width, spec.heads, int(spec.mlp_ratio * width), dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.mixer = nn.TransformerEncoder(block, spec.layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, num_prompts * width)
        nn.init.normal_(self.out.weight, std=0.02 / width ** 0.5)  # small: start close to basic VoP
        nn.init.zeros_(self.out.bias)
        self.num_prompts = num_prompts

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        b, t, w = cls.shape
        return self.out(self.mixer(cls)).view(b, t, self.num_prompts, w)


class VoPHooks(TowerHooks):
    """VoP's prompts and how the two towers' layer loops take them in."""

    def __init__(self, model: CLIPVideoModel, spec: PromptSpec, layout: PromptLayout, generator: GeneratorSpec,
                 readout: str, temporal: bool = False):
        super().__init__()
        v, t = model.clip.config.vision_config, model.clip.config.text_config
        self.n, self.frames = spec.num_prompts, spec.frames
        self.prefix, self.suffix = spec.text_prefix, spec.text_suffix
        self.position, self.context, self.inter = set(layout.position), set(layout.context), set(layout.inter)
        self.video_layers, self.text_layers, self.readout = list(layout.video_layers), list(layout.text_layers), readout
        self.vision_depth, self.text_depth = v.num_hidden_layers, t.num_hidden_layers
        self.max_positions = t.max_position_embeddings
        # Keyed by layer index ("video_prompts.3"): names stay meaningful under any prompt depth.
        self.video_prompts = nn.ParameterDict({
            str(i): nn.Parameter(torch.randn((self.frames, self.n, v.hidden_size) if i in self.position
                                             else (self.n, v.hidden_size)) * spec.init_std)
            for i in self.video_layers})
        self.text_prompts = nn.Parameter(torch.randn(len(self.text_layers), self.prefix + self.suffix,
                                                     t.hidden_size) * spec.init_std)  # [L_t, 8, W_t]
        self.generator = ContextGenerator(v.hidden_size, self.n, generator) if self.context else None
        self.temporal = TemporalEmbedding(self.context | self.inter, self.frames, v.hidden_size) if temporal else None

    def frame_cls(self, index: int, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The CLS tokens of x [B*T, N, W] as the frames exchange them -> [B, T, W] (+ time if temporal)."""
        cls = x[:, 0].reshape(-1, num_frames, x.shape[-1])
        return cls if self.temporal is None else self.temporal(index, cls)

    def video_prompted(self, index: int) -> bool:
        """Prompt tokens are in the sequence during vision layer `index` (inserted there or earlier)."""
        return any(i <= index for i in self.video_layers)

    # ------------------------------------------------------------------ vision tower
    def frame_prompts(self, index: int, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Prompts of vision layer `index` for x [B*T, N, W] -> [B*T, n, W]."""
        bt, _, w = x.shape
        base = self.video_prompts[str(index)]
        if index in self.position:
            if num_frames > self.frames:
                raise ConfigError(f"VoP^P has prompts for method.tuner.frames={self.frames} frame positions but the "
                                  f"video has {num_frames} frames (data.num_frames); raise method.tuner.frames")
            prompts = base[:num_frames].unsqueeze(0).expand(bt // num_frames, -1, -1, -1)  # [B, T, n, W]
        else:
            prompts = base.expand(bt // num_frames, num_frames, -1, -1)
        if index in self.context:
            prompts = prompts + self.generator(self.frame_cls(index, x, num_frames))
        return prompts.reshape(bt, self.n, w).to(x.dtype)

    def insert_video(self, index: int, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        prompts = self.frame_prompts(index, x, num_frames)
        return torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1)  # [B*T, 1 + n + N-1, W]

    def vision_input(self, vision: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if 0 in self.video_layers:
            x = self.insert_video(0, x, num_frames)
        return vision.pre_layrnorm(x)

    def vision_layer(self, index: int, layer: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if index > 0 and index in self.video_layers:
            x = self.insert_video(index, x, num_frames)
        extra = 0
        if index in self.inter:
            bt, _, w = x.shape
            cls = self.frame_cls(index, x, num_frames).unsqueeze(1).expand(-1, num_frames, -1, -1)  # [B, T, T, W]
            x = torch.cat([x, cls.reshape(bt, num_frames, w)], dim=1)  # every frame sees all frames' CLS
            extra = num_frames
        x = layer(x, None)
        x = x[:, :x.shape[1] - extra]
        # Released: prompts leave before the next listed layer; after the last layer they go too
        # (only CLS is read, so keeping them there would change nothing).
        if self.video_prompted(index) and (index + 1 in self.video_layers or index == self.vision_depth - 1):
            x = torch.cat([x[:, :1], x[:, 1 + self.n:]], dim=1)
        return x

    # ------------------------------------------------------------------ text tower
    def insert_text(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Released layout: prefix after SOT, suffix before the last caption slot."""
        prompts = self.text_prompts[self.text_layers.index(index)].to(x.dtype).expand(x.shape[0], -1, -1)  # [B, 8, W]
        return torch.cat([x[:, :1], prompts[:, :self.prefix], x[:, 1:-1], prompts[:, self.prefix:], x[:, -1:]], dim=1)

    def drop_text(self, x: torch.Tensor) -> torch.Tensor:
        """Keep [SOT], the caption slots and the last slot: [0], [1+p : -1-s], [-1]."""
        return torch.cat([x[:, :1], x[:, 1 + self.prefix: x.shape[1] - 1 - self.suffix], x[:, -1:]], dim=1)

    def embed_text(self, model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        prompts = self.prefix + self.suffix if self.text_layers else 0
        length = input_ids.shape[1] + prompts
        if length > self.max_positions:
            raise ConfigError(f"VoP: captions of {input_ids.shape[1]} tokens + {prompts} prompts "
                              f"exceed CLIP's {self.max_positions} positions; set method.max_text_len <= "
                              f"{self.max_positions - prompts}")
        embeddings = model.clip.text_model.embeddings
        x = embeddings.token_embedding(input_ids)  # [B, L, W]
        if self.text_layers:
            x = self.insert_text(0, x)  # [B, L + 8, W]
        return x + embeddings.position_embedding.weight[:length]

    def text_layer(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if index > 0 and index in self.text_layers:
            x = self.insert_text(index, x)
        x = layer(x, causal_mask(x))
        if not self.text_layers:
            return x
        if index + 1 in self.text_layers or (index == self.text_depth - 1 and self.readout == "eot"):
            return self.drop_text(x)
        return x  # released: prompts stay until the next listed layer, and after the last layer

    def pool_text(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        if self.readout == "released" and self.text_layers:
            eot = eot + self.prefix + self.suffix
        return x[torch.arange(x.shape[0], device=x.device), eot]


def resolve_layers(layers: list[int] | None, depth: int, key: str) -> list[int]:
    """Prompt depth: layer indices (sorted, unique, in [0, depth)); None = every layer."""
    if layers is None:
        return list(range(depth))
    layers = [int(i) for i in layers]
    if layers != sorted(set(layers)) or any(not 0 <= i < depth for i in layers):
        raise ConfigError(f"VoP: method.tuner.{key}={layers} must be sorted, unique layer indices in [0, {depth - 1}]")
    return layers


class VoPTuning(TuningMethod):
    """VoP and its variants; every knob is a key of `method.tuner` (configs/method/vop*.yaml)."""

    def __init__(self, num_prompts: int = 8, text_prefix: int = 4, text_suffix: int = 4,
                 frames: int = 12, inter_from: int | float | None = None, position: str = "none",
                 context: str = "none",
                 readout: str = "eot", init_std: float = 0.02, prompt_decay: bool = False,
                 generator_layers: int = 2, generator_heads: int = 8, generator_mlp_ratio: float = 4.0,
                 video_layers: list[int] | None = None, text_layers: list[int] | None = None,
                 temporal: bool = False):
        if readout not in READOUTS:
            raise ConfigError(f"VoP: method.tuner.readout={readout!r}, expected one of {READOUTS}")
        self.spec = PromptSpec(num_prompts, text_prefix, text_suffix, frames, init_std)
        self.generator = GeneratorSpec(generator_layers, generator_heads, generator_mlp_ratio)
        self.inter_from, self.position_scope, self.context_scope = inter_from, position, context
        self.video_layers, self.text_layers = video_layers, text_layers
        self.readout, self.prompt_decay, self.temporal = readout, prompt_decay, temporal

    def make_hooks(self, model: CLIPVideoModel) -> VoPHooks:
        depth = model.clip.config.vision_config.num_hidden_layers
        video_layers = resolve_layers(self.video_layers, depth, "video_layers")
        text_layers = resolve_layers(self.text_layers, model.clip.config.text_config.num_hidden_layers, "text_layers")
        if text_layers and text_layers[0] != 0:
            raise ConfigError(f"VoP: method.tuner.text_layers={text_layers} must include layer 0 (the released code "
                              "requires it: positional embeddings are added to the prompted sequence there)")
        k_s = resolve_inter_from(self.inter_from, depth)
        inter = set(range(k_s, depth)) if k_s is not None else set()
        position = scope_layers(self.position_scope, depth, inter, "position") & set(video_layers)
        context = (scope_layers(self.context_scope, depth, inter, "context") - {0}) & set(video_layers)
        if self.context_scope != "none" and not context:
            raise ConfigError("VoP^C: no context layer left (layer 0 cannot be one, and only layers of "
                              "method.tuner.video_layers have prompts); the model needs >= 2 layers")
        if self.temporal and not (context or inter):
            raise ConfigError("VoP: method.tuner.temporal=true needs VoP^C (context) or VoP^F (inter_from): "
                              "frames exchange no information here, so there is nothing to give a position")
        layout = PromptLayout(tuple(video_layers), tuple(text_layers), frozenset(position), frozenset(context),
                              frozenset(inter))
        return VoPHooks(model, self.spec, layout, self.generator, self.readout, self.temporal)

    def inert_parameters(self, model: CLIPVideoModel) -> int:
        """The text suffix prompts: under the causal mask they reach the read-out only when it comes
        after them, i.e. for captions filling all slots (eot) or of 64+ tokens (released)."""
        hooks = model.hooks
        return len(hooks.text_layers) * hooks.suffix * hooks.text_prompts.shape[-1] if isinstance(hooks, VoPHooks) \
            else 0

    def no_decay(self, name: str, param: nn.Parameter) -> bool:
        # Prompts opt out of weight decay by default: decay pulls them towards the zero vector,
        # which is not "no prompt" (a zero token still takes part in attention).
        if "_prompts" in name and not self.prompt_decay:
            return True
        return super().no_decay(name, param)
