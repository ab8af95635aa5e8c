"""Partial fine-tuning: the last k transformer blocks of each tower train, everything else is frozen."""
from __future__ import annotations

import re

from vop.errors import ConfigError
from vop.methods.base import ParameterCount, TuningMethod
from vop.models.clip import CLIPVideoModel

TOWERS = {"vision": "clip.vision_model.encoder.layers", "text": "clip.text_model.encoder.layers"}


class PartialTuning(TuningMethod):
    """`vision_layers` / `text_layers`: how many of the last blocks of each tower train (0 = none).

    The paper does not give k; k=1 in both towers is 10.2M values on B/32 (6.77%), the closest
    whole-block choice to the paper's 6.41%.
    """

    def __init__(self, vision_layers: int = 1, text_layers: int = 1):
        if vision_layers < 0 or text_layers < 0 or vision_layers + text_layers == 0:
            raise ConfigError(f"partial: method.tuner.vision_layers={vision_layers} and text_layers={text_layers} "
                              "must be >= 0 and not both 0")
        self.last = {"vision": vision_layers, "text": text_layers}
        self.depth: dict[str, int] = {}

    def apply(self, model: CLIPVideoModel) -> ParameterCount:
        config = model.clip.config
        self.depth = {"vision": config.vision_config.num_hidden_layers, "text": config.text_config.num_hidden_layers}
        for tower, k in self.last.items():
            if k > self.depth[tower]:
                raise ConfigError(f"partial: method.tuner.{tower}_layers={k} but the {tower} tower has "
                                  f"{self.depth[tower]} blocks")
        return super().apply(model)

    def patterns(self) -> list[str]:
        return [rf"^{re.escape(TOWERS[tower])}\.{i}\."
                for tower, k in self.last.items() for i in range(self.depth[tower] - k, self.depth[tower])]
