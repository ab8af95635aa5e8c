"""What a resume checkpoint holds beside the trainable tensors, as one object with
`state_dict` / `load_state_dict`: the stateful training parts and the run's progress."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from vop.engine.resume import rng_state, set_rng_state
from vop.engine.training_faults import NonFiniteGuard


@dataclass
class Progress:
    """Where a run stands: the numbers a resumed run continues from."""
    epoch: int = 0
    batch_in_epoch: int = 0        # batches of `epoch` already done
    step: int = 0                  # optimizer steps so far
    overflow_steps: int = 0        # fp16 updates the GradScaler skipped
    best: float | None = None      # trainer.checkpoint.best_metric's best value so far
    best_test: dict = field(default_factory=dict)  # evals_per_epoch > 1: the best test evaluation
    world_size: int = 1


@dataclass
class TrainState:
    """The stateful parts of training. `state_dict(progress)` is what a resume checkpoint stores
    (plain numbers, lists and tensors: no pickle); `load_state_dict` restores them and the RNGs."""
    optimizer: object
    scheduler: object
    scaler: object
    guard: NonFiniteGuard

    def state_dict(self, progress: Progress) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "nonfinite": self.guard.state_dict(), "rng": rng_state(),
                **asdict(progress)}

    def load_state_dict(self, state: dict) -> Progress:
        """Restore every part and the RNG states; returns the stored progress."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.guard.load_state_dict(state["nonfinite"])
        set_rng_state(state["rng"])
        known = Progress.__dataclass_fields__
        return Progress(**{k: v for k, v in state.items() if k in known})
