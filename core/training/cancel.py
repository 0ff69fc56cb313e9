"""A cancel that arrives while a training process is still loading its data and model."""
from __future__ import annotations

import os
import signal
import threading

from core.runs.folder import Run
from core.training import distributed


class _CancelledBeforeStart(BaseException):  # not Exception: nothing on the way may record it as a failure
    """SIGTERM arrived while the trainer was still loading data and model."""


class CancellableSetup:
    """Until fit() takes SIGTERM over, a cancel (SIGTERM) would kill the process mid-load and the run would read as
    failed; inside this block it ends the run 'cancelled' at its checkpoint step instead, as a cancel does later."""

    def __init__(self, run: Run):
        self.run, self.cancelled, self.previous = run, False, None

    def __enter__(self) -> "CancellableSetup":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    def __exit__(self, kind, error, trace) -> bool:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        if kind is not _CancelledBeforeStart:
            return False
        self.cancelled = True
        self._record()
        return True

    def agreed(self) -> bool:
        """True on every rank if a cancel reached any of them during setup. The cancel button signals rank 0 only:
        the others, still loading, would otherwise go on to train and wait for rank 0 in a collective forever."""
        if distributed.any_rank(self.cancelled) and not self.cancelled:
            self.cancelled = True
            self._record()
        return self.cancelled

    def _record(self) -> None:
        if distributed.is_main():
            step = self.run.checkpoint_step() if self.run.checkpoint_path.is_file() else 0
            self.run.write_status("cancelled", pid=os.getpid(), step=step, total_steps=self.run.config.train.steps)

    @staticmethod
    def _raise(signum, frame) -> None:
        raise _CancelledBeforeStart
