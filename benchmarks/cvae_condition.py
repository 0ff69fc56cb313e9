"""Does a conditional VAE's decoder change the attribute the judge sees when its condition is flipped?

    python benchmarks/cvae_condition.py [--steps 1500] [--preset small] [--latent-dim 16] [--faces 128]

Trains (or reuses, when it finished before) a `cvae` run on SynthFaces in the runs folder ($LATENTLAB_CHECKPOINTS
or checkpoints/), trains the project's attribute judge on it (core.metrics.classifier, the settings of
`evaluate --fast`: 150 steps of 64 images, cached in the run folder), and for each attribute takes held-out faces
**without** it, encodes them under their own attributes and decodes each code with the attribute's condition set to
0 (the reconstruction) and to 1, 2 (core.explore.condition). Prints, per attribute, the judge's held-out AUC, the
share of α = 0 decodes it calls positive (false positives), the flip rate at α = 1 and 2, and the mean |pixel
change| between α = 1 and α = 0. Not a test: the numbers go to benchmarks/RESULTS.md with the command.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from core.config import RunConfig
from core.data.synthfaces import SynthFaces
from core.explore.condition import condition_edit, face_conditions
from core.explore.encode import encode
from core.metrics.classifier import ClassifierSettings, load_or_train
from core.runs.folder import Run, default_runs_dir
from core.training.loop import resume, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", default="bench-cvae")
    p.add_argument("--runs-dir", type=Path, default=None)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--preset", default="small")
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="auto")
    p.add_argument("--faces", type=int, default=128, help="held-out faces without the attribute, per attribute")
    p.add_argument("--judge-steps", type=int, default=150)
    p.add_argument("--judge-test-images", type=int, default=500, help="held-out images for the judge's AUC")
    p.add_argument("--val-images", type=int, default=512, help="the run's validation images")
    a = p.parse_args()

    data = SynthFaces()
    runs = a.runs_dir or default_runs_dir()
    run = Run(runs / a.name)
    started = time.time()
    if not (run.path / "config.json").is_file():
        config = RunConfig.from_options({"model": "cvae", "data.dataset": "synthfaces", "arch.preset": a.preset,
                                         "arch.latent_dim": a.latent_dim, "train.steps": a.steps,
                                         "train.batch_size": a.batch_size, "train.lr": a.lr,
                                         "train.device": a.device, "train.val_images": a.val_images,
                                         "train.checkpoint_every": 500,
                                         "train.sample_every": 500}, name=a.name)
        train(config, runs, dataset=data)
    elif run.status().get("state") != "finished" or run.checkpoint_step() < a.steps:
        resume(run, steps=max(a.steps, run.config.train.steps), dataset=data)
    trained = time.time() - started
    config = run.config
    model = run.load_model("cpu")

    started = time.time()
    names = [str(n) for n in data.attributes.names]
    judge = load_or_train(data, ClassifierSettings.of(data, config.data.seed, a.judge_steps, a.judge_test_images, 0))
    judged = time.time() - started

    rng = np.random.default_rng(0)
    test = data.indices("test")
    print(f"run {run.name}: cvae, preset {config.arch.preset}, {config.arch.latent_dim} latent dims, "
          f"{run.checkpoint_step()} steps of {config.train.batch_size}, lr {config.train.lr:g} "
          f"(training {trained:.0f} s, judge {judged:.0f} s{', cached' if judge.cached else ''})")
    print("\n| attribute | judge AUC | positive at α = 0 | flip rate α = 1 | flip rate α = 2 | pixel change α = 1 |")
    print("|---|---|---|---|---|---|")
    flips = []
    for column, name in enumerate(names):
        pool = test[~data.attributes.values[test, column]]
        index = np.sort(rng.permutation(pool)[:a.faces])
        mu = encode(model, data, index)[0]
        images = condition_edit(model, mu, face_conditions(model, data, index), column, [0.0, 1.0, 2.0])
        probs = [judge.model.probabilities(torch.from_numpy(images[:, k]).float() / 255)[:, column] for k in range(3)]
        rates = [float((p > 0.5).mean()) for p in probs]
        change = float(np.abs(images[:, 1].astype(np.float32) - images[:, 0]).mean() / 255)
        flips.append(rates[1])
        auc = judge.aucs.get(name)
        print(f"| {name} | {'n/a' if auc is None else f'{auc:.3f}'} | {rates[0]:.2f} | {rates[1]:.2f} | "
              f"{rates[2]:.2f} | {change:.4f} |")
    print(f"\nmean flip rate at α = 1 over {len(names)} attributes: {np.mean(flips):.2f}")


if __name__ == "__main__":
    main()
