"""Training throughput per preset: a plain eager fp32 batch-64 step, then each speed-up the device supports,
then end to end with the real data path.

    python benchmarks/train_throughput.py [--device auto] [--presets standard,small] [--steps 5]
                                          [--cache-images N] [--tiny]

Each speed-up is tried on top of the best setup so far and kept only if it was faster (bf16 autocast on a
CPU without bf16 matmul units is usually slower). On CUDA the candidates are bf16 autocast, channels_last,
fused Adam, torch.compile and a larger batch; on CPU channels_last, bf16 autocast and a larger batch.
The speed-ups are core.speed's, the ones the trainer uses. End to end runs core.train.Trainer's own step
with its data feed (core.feed: resident on the GPU when the data fits, else streamed with read-ahead) on
SynthFaces and on a uint8 image cache the size of CelebA's train split (--cache-images, default 162,770 on
CUDA; small on CPU); one epoch of that cache takes 162,770 / images/s seconds.

Columns: images/s (median step time after warm-up); TFLOP/s achieved (FLOPs of one training step counted
with FlopCounterMode: convolutions and matmuls); % of a plain matmul's rate measured in the same run (bf16
on CUDA, fp32 on CPU); peak memory (CUDA: max allocated per row; CPU: the process's peak RSS so far, so
it only grows). `--tiny` shrinks everything for the CI smoke test. Not a test: numbers go to RESULTS.md.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from core.config import PRESETS, ArchConfig, DataConfig, LossConfig, RunConfig, TrainConfig
from core.data import load_dataset
from core.objectives.objective import Objective
from core.models.vae import VAE
from core.training.speed import Speedups
from core.training.loop import Trainer
from core.runs.folder import create_run
from core.device import pick_device


@dataclass(frozen=True)
class Setup:
    batch: int = 64
    speed: Speedups = Speedups()


def candidates(device: torch.device, big_batch: int) -> list[tuple[str, dict]]:
    """Speed-ups to try, in order, as changes to a Setup's Speedups (or its batch)."""
    if device.type == "cuda":
        return [("+ bf16 autocast", {"bf16": True}), ("+ channels_last", {"channels_last": True}),
                ("+ fused Adam", {"fused_adam": True}), ("+ torch.compile", {"compiled": True}),
                (f"+ batch {big_batch}", {"batch": big_batch})]
    return [("+ channels_last", {"channels_last": True}), ("+ bf16 autocast", {"bf16": True}),
            (f"+ batch {big_batch}", {"batch": big_batch})]


def changed(setup: Setup, change: dict) -> Setup:
    if "batch" in change:
        return replace(setup, batch=change["batch"])
    return replace(setup, speed=replace(setup.speed, **change))


def make_step(arch: ArchConfig, setup: Setup, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """One optimizer step of the trainer's objective (beta-VAE) on a given batch: the compute alone."""
    torch.manual_seed(0)
    speed = setup.speed
    model = speed.prepare(VAE(arch).to(device))
    optimizer = speed.optimizer(model.parameters(), lr=1e-4)
    objective = Objective(LossConfig(beta=4.0))
    forward = speed.forward(model)

    def step(x: torch.Tensor) -> torch.Tensor:
        x = speed.images(x)
        with speed.autocast(device):
            out = forward(x)
        loss = objective(out.float(), x, 1000)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_flops(device: torch.device, n: int, repeats: int) -> float:
    """FLOP/s of one n x n matmul: bf16 on CUDA, fp32 on CPU (the ceiling the % column is relative to)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 / median_seconds(lambda: a @ b, device, warmup=2, repeats=repeats)


def flops_per_image(arch: ArchConfig, batch: int = 4) -> float:
    """Forward + backward FLOPs of one training image (counted on CPU: the count does not depend on device)."""
    model, objective = VAE(arch), Objective(LossConfig(beta=4.0))
    x = torch.rand(batch, 3, 64, 64)
    with FlopCounterMode(display=False) as counter:
        objective(model(x), x, 1000)["loss"].backward()
    return counter.get_total_flops() / batch


class RandomCache:
    """A uint8 (N, 3, 64, 64) memory-mapped image cache like core.data.cache writes, filled with noise:
    what the trainer reads per step from a cached CelebA, without needing CelebA."""

    name = "uint8 cache"
    is_ground_truth = False

    def __init__(self, folder: Path, n: int, chunk: int = 8192):
        self.split = np.zeros(n, np.int8)
        self.array = np.lib.format.open_memmap(folder / "cache.npy", mode="w+", dtype=np.uint8, shape=(n, 3, 64, 64))
        rng = np.random.default_rng(0)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            self.array[start:stop] = rng.integers(0, 256, (stop - start, 3, 64, 64), dtype=np.uint8)
        self.array.flush()

    def __len__(self) -> int:
        return len(self.array)

    def indices(self, split: str) -> np.ndarray:
        return np.arange(len(self.array))

    def images(self, index: np.ndarray) -> np.ndarray:
        return self.array[index]


@dataclass
class Row:
    preset: str
    what: str
    batch: int
    images_per_s: float
    tflops: float
    percent: float
    memory_mb: float
    kept: str = ""


def measure(preset: str, what: str, arch: ArchConfig, setup: Setup, device: torch.device, next_x: Callable,
            a: argparse.Namespace, per_image: float, peak: float) -> Row:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step = make_step(arch, setup, device)
    seconds = median_seconds(lambda: step(next_x(setup.batch)), device, a.warmup, a.steps)
    rate = setup.batch / seconds
    return Row(preset, what, setup.batch, rate, rate * per_image / 1e12, 100 * rate * per_image / peak,
               peak_memory_mb(device))


def bench_preset(preset: str, arch: ArchConfig, device: torch.device, a: argparse.Namespace, peak: float,
                 cache: RandomCache) -> list[Row]:
    per_image = flops_per_image(arch)
    fixed = torch.rand(max(a.batch, a.big_batch), 3, 64, 64, device=device)

    def synthetic(batch: int) -> torch.Tensor:  # the compute alone, no data path
        return fixed[:batch]

    best = Setup(batch=a.batch)
    rows = [measure(preset, f"eager fp32, batch {a.batch}", arch, best, device, synthetic, a, per_image, peak)]
    best_rate = rows[0].images_per_s
    for what, change in candidates(device, a.big_batch):
        setup = changed(best, change)
        row = measure(preset, what, arch, setup, device, synthetic, a, per_image, peak)
        if row.images_per_s > best_rate:
            best, best_rate, row.kept = setup, row.images_per_s, "kept"
        else:
            row.kept = "dropped (slower)"
        rows.append(row)
    for name, data in (("SynthFaces", load_dataset(DataConfig("synthfaces"))),
                       (f"uint8 cache of {len(cache.array):,}", cache)):
        rows.append(end_to_end(preset, f"end to end (trainer), {name}", arch, best, device, data, a, per_image, peak))
    return rows


def end_to_end(preset: str, what: str, arch: ArchConfig, setup: Setup, device: torch.device, data,
               a: argparse.Namespace, per_image: float, peak: float) -> Row:
    """core.train.Trainer's own step with its own data feed (resident on CUDA when the data fits)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    speed = setup.speed
    mode = "fast" if (speed.bf16 or speed.channels_last or speed.fused_adam) else "plain"
    config = RunConfig(f"bench-{preset}", arch=arch, loss=LossConfig(beta=4.0),
                       train=TrainConfig(batch_size=setup.batch, device=str(device), mode=mode,
                                         compile=speed.compiled, threads=torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(create_run(config, Path(tmp)), dataset=data, progress=False)
        steps = iter(range(10**9))
        seconds = median_seconds(lambda: trainer.train_step(next(steps)), device, a.warmup, a.steps)
        trainer.feed.close()
    rate = setup.batch / seconds
    feed = "resident" if trainer.feed.store is not None else "streamed"
    return Row(preset, f"{what} ({feed})", setup.batch, rate,
               rate * per_image / 1e12, 100 * rate * per_image / peak, peak_memory_mb(device))


def table(rows: list[Row]) -> str:
    lines = ["| preset | setup | batch | images/s | TFLOP/s | % of matmul peak | peak memory (MiB) | |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.preset} | {r.what} | {r.batch} | {r.images_per_s:,.1f} | {r.tflops:.3g} | "
                     f"{r.percent:.3g} | {r.memory_mb:,.0f} | {r.kept} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--presets", default="standard,small")
    p.add_argument("--steps", type=int, help="timed steps per row (default: 10 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps per row (default: 5 on CUDA, 1 on CPU)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--big-batch", type=int, help="the larger batch tried (default: 256 on CUDA, 128 on CPU)")
    p.add_argument("--cache-images", type=int, help="rows of the uint8 cache (default: 162,770 on CUDA, 4,096 on CPU)")
    p.add_argument("--tiny", action="store_true", help="tiny networks and sizes: a smoke test, not a benchmark")
    a = p.parse_args(argv)
    device = pick_device(a.device)
    cuda = device.type == "cuda"
    if a.tiny:
        a.batch, a.big_batch, a.steps, a.warmup, a.cache_images = 8, 16, 2, 1, 256
    a.steps = a.steps or (10 if cuda else 3)
    a.warmup = a.warmup if a.warmup is not None else (5 if cuda else 1)
    a.big_batch = a.big_batch or (256 if cuda else 128)
    a.cache_images = a.cache_images or (162_770 if cuda else 4096)
    peak = matmul_flops(device, 256 if a.tiny else (8192 if cuda else 2048), repeats=3 if a.tiny else 10)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}; matmul peak {peak / 1e12:.3f} TFLOP/s "
          f"({'bf16' if cuda else 'fp32'}, measured)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = RandomCache(Path(tmp), a.cache_images)
        for preset in a.presets.split(","):
            arch = PRESETS[preset]
            if a.tiny:
                arch = replace(arch, channels=(8, 8, 16, 16), hidden=32, latent_dim=8)
            rows += bench_preset(preset, arch, device, a, peak, cache)
    print(table(rows))


if __name__ == "__main__":
    main()
