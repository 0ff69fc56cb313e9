"""Tiny configs that train in seconds on a 2-core CPU, shared by the training and CLI tests."""
from __future__ import annotations

from dataclasses import replace

from core.config import ArchConfig, DataConfig, LossConfig, RunConfig, TrainConfig

TINY_ARCH = ArchConfig("tiny", (8, 8, 16, 16), 32, 8, "none")


def tiny_config(name: str, model: str = "beta-vae", dataset: str = "dsprites", steps: int = 20, **train) -> RunConfig:
    options = dict(steps=steps, batch_size=16, lr=2e-3, log_every=5, val_every=10, val_images=32,
                   checkpoint_every=10, sample_every=10, threads=1)
    options.update(train)
    return RunConfig(name=name, model=model, arch=replace(TINY_ARCH), loss=LossConfig(beta=2.0, warmup_steps=5),
                     data=DataConfig(dataset), train=TrainConfig(**options)).validate()
