"""BitFit: only bias terms train (the temperature stays CLIP's)."""
from vop.methods.base import TuningMethod


class BiasTuning(TuningMethod):
    def __init__(self, layernorm: bool = True):
        # On B/32: 171,008 trainable values with LayerNorm biases, 138,240 without.
        self.layernorm = layernorm

    def patterns(self) -> list[str]:
        if self.layernorm:
            return [r"\.bias$"]
        # Linear layers only: attention q/k/v/out projections and the MLP's fc1/fc2.
        return [r"_proj\.bias$|\.fc[12]\.bias$"]
