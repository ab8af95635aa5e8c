"""Zero-shot CLIP: nothing trains; the run only evaluates."""
from vop.methods.base import TuningMethod


class ZeroShot(TuningMethod):
    name = "zeroshot"
