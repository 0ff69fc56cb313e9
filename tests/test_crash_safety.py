"""Kill training at random moments: the run folder must stay loadable, readable and resumable."""
import multiprocessing
import os
import random
import signal
import time

import pytest
import torch

from core.data.dsprites import DSprites
from core.runs.folder import Run
from core.training.loop import Trainer, resume
from core.runs.folder import create_run
from tests.tiny import tiny_config

TRIALS = 20


def _train_forever(path: str) -> None:
    torch.set_num_threads(1)
    Trainer(Run(path), DSprites(), progress=False).fit()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="SKIPPED: needs fork() to start trainers quickly")
def test_sigkill_at_random_moments_never_loses_the_last_checkpoint(tmp_path):
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(0)
    run = create_run(tiny_config("crash", steps=100_000, log_every=1, checkpoint_every=3, sample_every=7,
                                 val_every=5, batch_size=8), tmp_path)
    last_step = 0
    for trial in range(TRIALS):
        proc = ctx.Process(target=_train_forever if trial == 0 else _resume_forever, args=(str(run.path),))
        proc.start()
        time.sleep(rng.uniform(0.3, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        status = run.status()  # read as failed, never written: a dead pid is not "running"
        assert status["state"] in ("failed", "unknown"), status
        records = run.metrics("train")  # a torn last line never breaks the reader
        if run.checkpoint_path.is_file():
            step = run.checkpoint_step()
            model = run.load_model()
            assert all(torch.isfinite(p).all() for p in model.parameters())
            assert step >= last_step  # checkpoints only move forward
            last_step = step
            assert all(r["step"] <= step + 3 for r in records)  # nothing logged far past the checkpoint
    assert last_step > 0
    finished = resume(run, steps=last_step + 4, progress=False, dataset=DSprites())
    assert finished.status()["state"] == "finished" and finished.checkpoint_step() == last_step + 4
    steps = [r["step"] for r in finished.metrics("train")]
    assert steps == sorted(set(steps)) and steps[-1] == last_step + 4
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]  # no stray temp files kept


def _resume_forever(path: str) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(Run(path), DSprites(), progress=False)
    if Run(path).checkpoint_path.is_file():
        trainer.resume()
    trainer.fit()
