"""What the training loop does when things go wrong: non-finite losses, stop signals, dead workers
(whose video vop/data/in_flight.py names)."""
from __future__ import annotations

import logging
import math
import signal
from types import FrameType

from vop.errors import UserError

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError, RuntimeError):
    """Too many non-finite losses in a row: the run is diverging."""


class DataLoadError(UserError, RuntimeError):
    """Loading training data failed; the message names the video(s) being read."""


class NonFiniteGuard:
    """Counts skipped steps; raises after `max_in_row` consecutive non-finite losses (0 = never)."""

    def __init__(self, max_in_row: int):
        self.max_in_row = max_in_row
        self.total = 0
        self.in_row = 0

    def check(self, loss_value: float, step: int) -> bool:
        """True if the step may proceed; False (counted) if the loss is NaN/inf."""
        if math.isfinite(loss_value):
            self.in_row = 0
            return True
        self.total += 1
        self.in_row += 1
        log.warning("step %d: loss is %s; step skipped (%d in a row, %d in total)",
                    step, loss_value, self.in_row, self.total)
        if self.max_in_row and self.in_row >= self.max_in_row:
            raise NonFiniteLossError(
                f"{self.in_row} non-finite losses in a row (trainer.max_nonfinite_in_row={self.max_in_row}) at "
                f"step {step}: training diverged. Lower the learning rate, use trainer.precision=bf16 or fp32, "
                "or resume from an earlier checkpoint")
        return False

    def state_dict(self) -> dict:
        return {"total": self.total, "in_row": self.in_row}

    def load_state_dict(self, state: dict) -> None:
        self.total, self.in_row = int(state["total"]), int(state["in_row"])


class StopRequest:
    """SIGTERM/SIGINT set a flag instead of killing the process; the loop checkpoints and exits.

    A second SIGINT restores Python's default (KeyboardInterrupt) so Ctrl-C twice still stops
    a run that hangs.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.previous: dict[int, object] = {}

    def install(self) -> "StopRequest":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        log.warning("%s received: saving a resume checkpoint after this step, then exiting", self.signal_name)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    @property
    def requested(self) -> bool:
        return self.signal_name is not None
