"""Tiny configs that train in seconds on a 2-core CPU, and helpers shared by the training and page tests."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.config import ArchConfig, DataConfig, LossConfig, RunConfig, TrainConfig

TINY_ARCH = ArchConfig("tiny", (8, 8, 16, 16), 32, 8, "none")


def tiny_config(name: str, model: str = "beta-vae", dataset: str = "dsprites", steps: int = 20, **train) -> RunConfig:
    options = dict(steps=steps, batch_size=16, lr=2e-3, log_every=5, val_every=10, val_images=32,
                   checkpoint_every=10, sample_every=10, threads=1)
    options.update(train)
    return RunConfig(name=name, model=model, arch=replace(TINY_ARCH), loss=LossConfig(beta=2.0, warmup_steps=5),
                     data=DataConfig(dataset), train=TrainConfig(**options)).validate()


def encoded_copy(runs_dir: Path, dest: Path, split: str, limit: int) -> Path:
    """A copy of the tiny runs folder with `split` (at most `limit` images) already encoded in each run."""
    from core.explore.encode import load_or_encode
    from core.runs.folder import list_runs

    root = shutil.copytree(runs_dir, dest)
    for run in list_runs(root):
        load_or_encode(run, split, limit)
    return root


def evaluated_run(root: Path, config: RunConfig, results: dict, step: int | None = None) -> Path:
    """A run folder made without training, for tables and pages that read only config.json and eval.json: those
    two (`results` at `step`, by default the config's last step) and an empty checkpoint file, so that the run
    pickers list it."""
    from core.metrics.evaluate import FILE, FORMAT
    from core.runs.folder import CHECKPOINT

    path = root / config.name
    path.mkdir(parents=True)
    (path / "config.json").write_text(config.to_json())
    (path / FILE).write_text(json.dumps({"format": FORMAT, "run": config.name, "model": config.model,
                                         "dataset": config.data.dataset, "latent_dim": config.arch.latent_dim,
                                         "step": config.train.steps if step is None else step, "results": results}))
    (path / CHECKPOINT).touch()
    return path


def use_copy(source: Path, dest: Path, monkeypatch) -> Path:
    """A private copy of a runs folder that the dashboard will read (copy2 keeps mtimes: caches stay fresh)."""
    root = shutil.copytree(source, dest)
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(root))
    return root


def fail_at(trainer, step: int, fault) -> None:
    """Make `trainer` call `fault(trainer)` just before training step `step` (fault injection)."""
    train_step = trainer.train_step

    def faulty(i):
        if i == step:
            fault(trainer)
        return train_step(i)

    trainer.train_step = faulty


class Subset:
    """The first n images of a data set, all in the train split (keeps the resident copy small)."""

    def __init__(self, data, n: int):
        self.data, self.name = data, f"{data.name}[:{n}]"
        self.split = np.zeros(n, np.int8)

    def __len__(self) -> int:
        return len(self.split)

    def indices(self, split: str) -> np.ndarray:
        return np.arange(len(self)) if split in ("train", "all") else np.arange(0)

    def images(self, index: np.ndarray) -> np.ndarray:
        return self.data.images(index)

    def masks(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.data.masks(index)
