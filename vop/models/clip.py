"""CLIP from HF transformers, run layer by layer so tuning methods can hook into every block."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import CLIPConfig, CLIPModel

from vop.models.hooks import TowerHooks
from vop.models.tensors import copy_strict
from vop.models.weights import WeightsNotFoundError, fixes, weights_source

log = logging.getLogger(__name__)


class CLIPVideoModel(nn.Module):
    """CLIP's two towers with a video read-out: mean of L2-normalised frame embeddings.

    The towers are HF's modules; only the loop over their blocks lives here so that
    `self.hooks` (see vop/models/hooks.py) can change what happens around each block.
    """

    def __init__(self, clip: CLIPModel):
        super().__init__()
        self.clip = clip
        self.hooks: TowerHooks = TowerHooks()
        self.grad_checkpointing = False  # trainer.grad_checkpointing: recompute blocks in backward

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_pretrained(cls, name_or_path: str, attn_implementation: str = "sdpa") -> "CLIPVideoModel":
        """Load HF CLIP weights from a local folder or the hub cache (downloading only when reachable)."""
        source, local_only = weights_source(name_or_path)
        try:
            clip = CLIPModel.from_pretrained(source, attn_implementation=attn_implementation,
                                             local_files_only=local_only)
        except OSError as err:
            raise WeightsNotFoundError(f"could not load CLIP weights {name_or_path}: the files are missing or "
                                       f"incomplete ({err}). {fixes(name_or_path)}") from err
        return cls(clip)

    @classmethod
    def from_config(cls, vision: dict, text: dict, projection_dim: int, seed: int = 0,
                    attn_implementation: str = "sdpa", weights: str | None = None) -> "CLIPVideoModel":
        """A randomly initialised CLIP (tests, the demo); `seed` makes it reproducible.

        `weights`: a safetensors file with every parameter of this architecture (e.g. the
        checkpoint of a `method=full` run), loaded over the random init: a small "pretrained"
        CLIP, as the synthetic benchmark's stage 1 makes.
        """
        config = CLIPConfig(text_config=dict(text), vision_config=dict(vision), projection_dim=projection_dim)
        config._attn_implementation = attn_implementation
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            clip = CLIPModel(config)
        model = cls(clip)
        if weights:
            model.load_weights(weights)
        return model

    def load_weights(self, path: str | Path) -> None:
        """Load every parameter from a safetensors file; anything missing or extra is an error."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"model.net.weights={str(path)!r}: no such file")
        tensors = load_file(str(path))
        expected = dict(self.named_parameters())
        copy_strict(expected, tensors, f"model.net.weights={str(path)!r}",
                    hint="; it must hold all parameters, e.g. the checkpoint of a method=full run of the "
                         "same model config")

    def set_hooks(self, hooks: TowerHooks) -> None:
        self.hooks = hooks

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    @property
    def image_size(self) -> int:
        return self.clip.config.vision_config.image_size

    # ----------------------------------------------------------------- encoders
    def _layer(self, hook, *args) -> torch.Tensor:
        """Run one hooked block; with gradient checkpointing its activations are recomputed in the
        backward pass instead of stored (far less memory for ~1/3 more compute)."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(hook, *args, use_reentrant=False)
        return hook(*args)

    def encode_frames(self, pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
        """pixels [B*T, 3, H, W] (normalised) -> L2-normalised frame embeddings [B*T, D]."""
        vision = self.clip.vision_model
        x = vision.embeddings(pixels.to(vision.embeddings.patch_embedding.weight.dtype))  # [BT, N, W]
        x = self.hooks.vision_input(vision, x, num_frames)  # pre-LayerNorm (and prompts)
        for i, layer in enumerate(vision.encoder.layers):
            x = self._layer(self.hooks.vision_layer, i, layer, x, num_frames)
        pooled = self.hooks.pool_vision(vision, x, num_frames)  # [BT, W]: each frame's CLS, post-LayerNorm
        return F.normalize(self.clip.visual_projection(pooled), dim=-1)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, T, 3, H, W] -> video embeddings [B, D]: mean of normalised frame embeddings."""
        b, t = frames.shape[:2]
        per_frame = self.encode_frames(frames.flatten(0, 1), num_frames=t).view(b, t, -1)  # [B, T, D]
        return F.normalize(per_frame.mean(dim=1), dim=-1)

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids [B, L] -> L2-normalised text embeddings [B, D]."""
        text = self.clip.text_model
        x = self.hooks.embed_text(self, input_ids)  # [B, L, W]
        for i, layer in enumerate(text.encoder.layers):
            x = self._layer(self.hooks.text_layer, i, layer, x)
        x = text.final_layer_norm(x)
        # End-of-text has the largest id in CLIP's vocabulary and argmax returns the first
        # maximum, so this finds the first EOT whether padding is 0 (OpenAI) or EOT (HF).
        eot = input_ids.argmax(dim=-1)
        return F.normalize(self.clip.text_projection(self.hooks.pool_text(x, eot)), dim=-1)
