"""Zero-shot CLIP: nothing trains; the run only evaluates."""
from vop.methods.base import TuningMethod


class ZeroShot(TuningMethod):
    """No pattern and no hooks: `apply()` freezes every tensor."""
