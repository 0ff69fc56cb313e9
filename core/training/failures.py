"""How a training run fails: divergence and running out of memory, each with a message that says what to do."""
from __future__ import annotations

import math

from core.runs.folder import Run, RunError

# A logged loss this many times the lowest one so far means the run has diverged (a spike is a few times).
EXPLOSION = 100.0


def diverged_advice(lr: float) -> str:
    """What to do about a diverged run. The cure is a lower learning rate; there is no learning-rate warm-up
    (--warmup-steps ramps the KL weight beta from 0, which does not slow Adam down)."""
    return (f"train again with a lower --lr (e.g. --lr {lr / 2:g}, half of {lr:g}); --warmup-steps is the KL "
            "warm-up (it ramps beta), not a learning-rate warm-up")


def kept_checkpoint(run: Run) -> str:
    """What a run stopped by an error keeps, for its message: the last good checkpoint, or none at all when it
    stopped before its first (never claim a checkpoint that does not exist)."""
    if run.checkpoint_path.is_file():
        return "the last good checkpoint is kept"
    return "no checkpoint had been saved yet (the first is due at --checkpoint-every), so there is none to keep"


class Diverged(RuntimeError):
    """The logged loss blew up or the weights went NaN/inf; the message advises a lower --lr."""


class OutOfMemory(RunError):
    """The accelerator (or host) ran out of memory: the message suggests a smaller batch."""


def check_loss(loss: float, kl_dims: list[float], best_loss: float, step: int, lr: float, run: Run) -> None:
    """Diverged if a logged loss is not finite or has exploded past EXPLOSION times the lowest so far.

    Finite is not enough: an Adam blow-up can sit at 1e26 for thousands of steps before overflowing."""
    exploded = best_loss > 0 and loss > EXPLOSION * best_loss
    if exploded or not all(math.isfinite(x) for x in [loss, *kl_dims]):
        raise Diverged(f"the loss became {loss:.4g} at step {step} (lowest so far {best_loss:.4g}): "
                       f"{diverged_advice(lr)}; {kept_checkpoint(run)}")
