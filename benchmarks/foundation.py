"""Foundation figures: data-set render speed, CelebA cache build, training images/s per preset.

    python benchmarks/foundation.py [--celeba ../shared/data/celeba] [--steps 20]

Prints one table; medians over repeats after a warm-up. Not a test: numbers go to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core.config import PRESETS, DataConfig, LossConfig, RunConfig, TrainConfig
from core.data import load_dataset
from core.runs.folder import Run
from core.training.loop import Trainer


def median_rate(fn, items: int, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return items / statistics.median(times)


def render_rate(name: str, batch: int = 256) -> float:
    data = load_dataset(DataConfig(name))
    rng = np.random.default_rng(0)
    return median_rate(lambda: data.images_from_factors(data.sample_factors(batch, rng)), batch, repeats=20)


def celeba_cache_build(root: str) -> tuple[float, float, int]:
    from core.data.celeba import CelebA

    cache = tempfile.mkdtemp()
    try:
        t = time.perf_counter()
        data = CelebA(root, cache_dir=cache, progress=False)
        build = time.perf_counter() - t
        t = time.perf_counter()
        CelebA(root, cache_dir=cache, progress=False)
        return build, time.perf_counter() - t, len(data)
    finally:
        shutil.rmtree(cache)


def train_rate(preset: str, batch: int, steps: int, model: str = "beta-vae") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(name="bench", model=model, arch=PRESETS[preset], loss=LossConfig(beta=4.0, warmup_steps=0),
                           data=DataConfig("synthfaces"), train=TrainConfig(steps=steps, batch_size=batch, device="cpu"))
        run = Run(Path(tmp) / "bench")
        run.path.mkdir()
        run.write_config(config)
        trainer = Trainer(run, progress=False)
        step = iter(range(10**9))
        return median_rate(lambda: [trainer.train_step(next(step)) for _ in range(steps)], steps * batch, repeats=3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--celeba", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba"))
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| what | figure |\n|---|---|")
    print(f"| SynthFaces render, batch 256 | {render_rate('synthfaces'):,.0f} images/s |")
    print(f"| dSprites render, batch 256 | {render_rate('dsprites'):,.0f} images/s |")
    if Path(a.celeba).is_dir():
        build, reload, n = celeba_cache_build(a.celeba)
        print(f"| CelebA cache build ({n:,} images) | {build:.1f} s ({n / build:,.0f} images/s) |")
        print(f"| CelebA reload from cache | {reload * 1000:.0f} ms |")
    for preset, batch in (("small", 64), ("small", 256), ("standard", 64)):
        rate = train_rate(preset, batch, a.steps)
        print(f"| CPU training, {preset}, batch {batch}, SynthFaces | {rate:,.0f} images/s |")


if __name__ == "__main__":
    main()
