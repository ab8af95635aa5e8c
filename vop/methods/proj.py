"""Projection heads only: CLIP's visual (768x512) and text (512x512) projections train."""
from vop.methods.base import TuningMethod


class ProjectionTuning(TuningMethod):
    def patterns(self) -> list[str]:
        # On B/32: 768*512 + 512*512 = 655,360 trainable values (the projections have no bias).
        return [r"^clip\.visual_projection\.", r"^clip\.text_projection\."]
