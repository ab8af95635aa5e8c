"""Full fine-tuning: every CLIP tensor trains, the temperature included."""
from vop.methods.base import TuningMethod


class FullTuning(TuningMethod):
    def patterns(self) -> list[str]:
        return [r".*"]
