"""Zero-shot CLIP: nothing trains; the run only evaluates."""
from vop.methods.base import TuningMethod


class ZeroShotTuning(TuningMethod):
    """No pattern and no hooks: `apply()` freezes every tensor."""
