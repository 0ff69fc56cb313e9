"""Divergence and full disks: the run stops with a truthful status and the last good checkpoint survives."""
import errno

import pytest
import torch

import core.runs.checkpoint
from core.data.dsprites import DSprites
from core.training.failures import Diverged
from core.training.loop import Trainer
from core.runs.folder import create_run
from tests.tiny import fail_at, tiny_config

DATA = DSprites()


def _trainer(tmp_path, **train):
    return Trainer(create_run(tiny_config("fault", **train), tmp_path), DATA, progress=False)


def test_nan_weights_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, steps=40, log_every=5, checkpoint_every=4)

    def poison(trainer):
        with torch.no_grad():
            next(trainer.model.parameters()).fill_(float("nan"))

    fail_at(trainer, 9, poison)
    with pytest.raises(Diverged, match="lower --lr"):
        trainer.fit()
    status = trainer.run.status()
    assert status["state"] == "failed" and "--lr 0.001" in status["error"]  # half the tiny run's 2e-3
    # --warmup-steps is the KL warm-up: named as what it is, never as a learning-rate fix
    assert "add --warmup-steps" not in status["error"] and "not a learning-rate warm-up" in status["error"]
    assert trainer.run.checkpoint_step() == 8
    assert all(torch.isfinite(p).all() for p in trainer.run.load_model().parameters())


def test_disk_full_while_checkpointing_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, steps=20, checkpoint_every=5)
    real_save = core.runs.checkpoint.save_file
    calls = []

    def full_disk(tensors, path, metadata=None):
        calls.append(metadata["step"])
        if len(calls) >= 2:  # the disk stays full, also for the save attempted on the way out
            with open(path, "wb") as f:
                f.write(b"\x00" * 100)  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(core.runs.checkpoint, "save_file", full_disk)
    with pytest.raises(OSError, match="No space"):
        trainer.fit()
    assert trainer.run.checkpoint_step() == 5
    trainer.run.load_model()
    status = trainer.run.status()
    assert status["state"] == "failed" and "No space left" in status["error"]
    assert not [p for p in trainer.run.path.iterdir() if p.name.endswith(".tmp")]


def test_a_finite_but_exploding_loss_also_stops_the_run(tmp_path):
    trainer = _trainer(tmp_path, steps=40, log_every=5, checkpoint_every=5)

    def blow_up(trainer):
        with torch.no_grad():
            mu_rows = trainer.model.latent_dim  # the head's first half is the posterior mean
            trainer.model.encoder.head[-1].weight[:mu_rows].mul_(1e4)  # huge means: KL ~1e8, still finite

    fail_at(trainer, 17, blow_up)
    with pytest.raises(Diverged, match=r"became \d.*lower --lr"):  # a finite number, not inf or nan
        trainer.fit()
    assert trainer.run.status()["state"] == "failed" and trainer.run.checkpoint_step() == 15
