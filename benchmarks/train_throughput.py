"""Training throughput per preset: a plain eager fp32 batch-64 step, then each speed-up the device supports,
then end to end with the real data path.

    python benchmarks/train_throughput.py [--device auto] [--presets standard,small] [--steps 5]
                                          [--cache-images N] [--big-batch N] [--no-synthfaces] [--epoch] [--tiny]

Each speed-up is tried on top of the best setup so far and kept only if it was faster (bf16 autocast on a
CPU without bf16 matmul units is usually slower). On CUDA the candidates are bf16 autocast, channels_last,
fused Adam, torch.compile and a larger batch; on CPU channels_last, bf16 autocast and a larger batch.
The speed-ups are core.training.speed's, the ones the trainer uses. End to end runs the Trainer's own step
with its data feed (core.training.feed: resident on the GPU when the data fits, else streamed with read-ahead) on
SynthFaces and on a uint8 image cache the size of CelebA's train split (--cache-images, default 162,770 on
CUDA; small on CPU); one epoch of that cache takes 162,770 / images/s seconds, and `--epoch` trains one with the
same trainer, timed wall to wall, and counts the torch.compile graphs its step compiled (when compiled). Each row
also goes to stderr as soon as it is measured, so a run cut short still shows what it had. On CUDA the GPU
targets are printed as met / NOT met (benchmarks/gpu_check.sh runs this with --epoch on the `standard` preset).

Columns: images/s (median step time after warm-up); TFLOP/s achieved (FLOPs of one training step counted
with FlopCounterMode: convolutions and matmuls); % of a plain matmul's rate measured in the same run (bf16
on CUDA, fp32 on CPU); peak memory (CUDA: max allocated per row; CPU: the process's peak RSS so far, so
it only grows). After the presets comes the "peer" row: a VanillaVAE-style step (five stride-2 conv + BatchNorm +
LeakyReLU blocks of 32-512 channels, latent 128, a ConvTranspose mirror decoder, 64x64 input, MSE + KL), written
here from its published architecture, timed the same way. `--tiny` (or `--smoke`) shrinks everything for the CI
smoke test. Not a test: numbers go to RESULTS.md.

Contention mode (CPU only): the automatic CPU thread choice (core/training/threads.py) against fixed counts,

    python benchmarks/train_throughput.py --contention [--presets small] [--competitors 1] [--steps 20]
                                          [--wait-policies inherit|default,passive,active]

times core.training.loop.Trainer's real step (a uint8 cache, batch 64) and the peer step with 1 thread, all cores
fixed (PyTorch's default count: 2 on the project's machine) and the automatic choice, first idle, then beside
`--competitors` busy processes (a bounded pure-Python spin loop each, killed at the end). Targets: under
contention the automatic choice keeps >= 80% of the best 1-thread rate; idle it runs >= 1.6x the 1-thread rate.
Each wait policy in `--wait-policies` runs in a child process with OMP_WAIT_POLICY set that way (default: unset;
inherit: this process's environment, in this process), since OpenMP reads it only when torch loads.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from core.config import PRESETS, ArchConfig, DataConfig, LossConfig, RunConfig, TrainConfig
from core.data import load_dataset
from core.device import pick_device
from core.models.vae import VAE
from core.objectives.objective import Objective
from core.runs.folder import create_run
from core.training.loop import Trainer
from core.training.speed import Speedups
from core.training.threads import ThreadGovernor, ceiling


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
    objective = Objective(LossConfig(beta=4.0, warmup_steps=0))
    forward = speed.forward(model)

    def step(x: torch.Tensor) -> torch.Tensor:
        x = speed.images(x)
        noise = torch.randn(len(x), arch.latent_dim, device=device)  # fp32, drawn outside the model as the trainer does
        with speed.autocast(device):
            out = forward(x, noise)
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
    model, objective = VAE(arch), Objective(LossConfig(beta=4.0, warmup_steps=0))
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
    notes: list[str] = field(default_factory=list)  # printed under the table (the timed epoch)


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
    rows = [progress(measure(preset, f"eager fp32, batch {a.batch}", arch, best, device, synthetic, a, per_image,
                             peak))]
    best_rate = rows[0].images_per_s
    for what, change in candidates(device, a.big_batch):
        setup = changed(best, change)
        row = measure(preset, what, arch, setup, device, synthetic, a, per_image, peak)
        if row.images_per_s > best_rate:
            best, best_rate, row.kept = setup, row.images_per_s, "kept"
        else:
            row.kept = "dropped (slower)"
        rows.append(progress(row))
    sources = [] if a.no_synthfaces else [("SynthFaces", lambda: load_dataset(DataConfig("synthfaces")))]
    for name, data in [*sources, (f"uint8 cache of {len(cache.array):,}", lambda: cache)]:
        data = data()
        rows.append(progress(end_to_end(preset, f"end to end (trainer), {name}", arch, best, device, data, a,
                                        per_image, peak, epoch=a.epoch and data is cache)))
    return rows


def progress(row: Row) -> Row:
    """Each row on stderr as soon as it is measured, so a run cut short (a timeout) still shows what it had."""
    print(f"[train_throughput] {row.preset} | {row.what} | batch {row.batch} | {row.images_per_s:,.1f} images/s | "
          f"{row.memory_mb:,.0f} MiB {row.kept}", file=sys.stderr, flush=True)
    for note in row.notes:
        print(f"[train_throughput] {note}", file=sys.stderr, flush=True)
    return row


def end_to_end(preset: str, what: str, arch: ArchConfig, setup: Setup, device: torch.device, data,
               a: argparse.Namespace, per_image: float, peak: float, epoch: bool = False) -> Row:
    """core.training.loop.Trainer's own step with its own data feed (resident on CUDA when the data fits). With `epoch`,
    the same trainer then trains one whole epoch of `data`, timed, and counts its torch.compile graphs."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    from torch._dynamo.utils import counters

    counters.clear()  # graphs compiled from here on are this trainer's
    notes = []
    speed = setup.speed
    mode = "fast" if (speed.bf16 or speed.channels_last or speed.fused_adam) else "plain"
    config = RunConfig(f"bench-{preset}", arch=arch, loss=LossConfig(beta=4.0, warmup_steps=0),
                       train=TrainConfig(batch_size=setup.batch, device=str(device), mode=mode,
                                         compile=speed.compiled, threads=torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(create_run(config, Path(tmp)), dataset=data, progress=False)
        steps = iter(range(10**9))
        seconds = median_seconds(lambda: trainer.train_step(next(steps)), device, a.warmup, a.steps)
        if epoch:
            notes = timed_epoch(trainer, next(steps), device)
        trainer.feed.close()
    rate = setup.batch / seconds
    feed = "resident" if trainer.feed.store is not None else "streamed"
    if speed.compiled:
        graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
        notes.append(f"{preset}: torch.compile graphs of the trainer's step: {graphs} compiled, {breaks} graph "
                     f"break(s) (over warm-up, timed steps{' and the epoch' if epoch else ''}; target 1 and 0)")
    elif epoch:
        notes.append(f"{preset}: torch.compile graphs: none (the setup timed here is not compiled; "
                     "tests/test_compile_graphs.py counts them)")
    return Row(preset, f"{what} ({feed})", setup.batch, rate,
               rate * per_image / 1e12, 100 * rate * per_image / peak, peak_memory_mb(device), notes=notes)


def timed_epoch(trainer: Trainer, first: int, device: torch.device) -> list[str]:
    """Train one whole epoch (steps_per_epoch batches: the remainder of len // batch is dropped, as the trainer
    does) from step `first`, timed wall to wall with the device synchronised at both ends."""
    n, batch = trainer.batches.steps_per_epoch, trainer.config.train.batch_size
    sync(device)
    t = time.perf_counter()
    for step in range(first, first + n):
        trainer.train_step(step)
    sync(device)
    seconds = time.perf_counter() - t
    target = "" if device.type != "cuda" else f"; target <= 2 s: {'met' if seconds <= 2 else 'NOT met'}"
    line = (f"one epoch of {len(trainer.dataset):,} images ({n:,} steps of {batch}, {n * batch:,} images): "
            f"{seconds:.2f} s = {n * batch / seconds:,.0f} images/s{target}")
    return [line]


class PeerVAE(nn.Module):
    """A VanillaVAE-style network from its published architecture: five Conv2d(3x3, stride 2) + BatchNorm +
    LeakyReLU blocks (32, 64, 128, 256, 512 channels: 64x64 -> 2x2), linear heads to a 128-d latent, and the
    mirror decoder: a linear layer back to 512x2x2, four ConvTranspose2d(3x3, stride 2) + BatchNorm + LeakyReLU
    blocks, a last one to 64x64 and a 3x3 conv to 3 channels with tanh."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256, 512), latent: int = 128):
        super().__init__()
        blocks, previous = [], 3
        for c in channels:
            blocks += [nn.Conv2d(previous, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.LeakyReLU()]
            previous = c
        self.encoder = nn.Sequential(*blocks)
        self.side = 64 // 2 ** len(channels)
        flat = channels[-1] * self.side ** 2
        self.mu, self.log_var = nn.Linear(flat, latent), nn.Linear(flat, latent)
        self.decoder_input = nn.Linear(latent, flat)
        blocks = []
        for c_in, c_out in zip(channels[::-1], channels[::-1][1:]):
            blocks += [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1),
                       nn.BatchNorm2d(c_out), nn.LeakyReLU()]
        first = channels[0]
        blocks += [nn.ConvTranspose2d(first, first, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(first),
                   nn.LeakyReLU(), nn.Conv2d(first, 3, 3, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*blocks)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x).flatten(1)
        mu, log_var = self.mu(h), self.log_var(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        h = self.decoder_input(z).view(len(x), self.channels[-1], self.side, self.side)
        return self.decoder(h), mu, log_var


def peer_network(tiny: bool) -> PeerVAE:
    return PeerVAE((8, 8, 16, 16, 16), 8) if tiny else PeerVAE()


def make_peer_step(tiny: bool, device: torch.device, kld_weight: float = 64 / 162_770):
    """One Adam step of the peer: MSE on [-1, 1] pixels plus the batch-mean KL weighted by batch / data size."""
    torch.manual_seed(0)
    model = peer_network(tiny).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)

    def step(x: torch.Tensor) -> torch.Tensor:
        target = x * 2 - 1
        recon, mu, log_var = model(target)
        kl = torch.mean(-0.5 * torch.sum(1 + log_var - mu**2 - log_var.exp(), dim=1))
        loss = nn.functional.mse_loss(recon, target) + kld_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def peer_flops_per_image(tiny: bool, batch: int = 4) -> float:
    model, x = peer_network(tiny), torch.rand(batch, 3, 64, 64) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        recon, mu, log_var = model(x)
        (nn.functional.mse_loss(recon, x) + mu.square().mean() + log_var.exp().mean()).backward()
    return counter.get_total_flops() / batch


def bench_peer(device: torch.device, a: argparse.Namespace, peak: float) -> Row:
    """The peer's eager fp32 step on a fixed batch (the compute alone), like each preset's first row."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step = make_peer_step(a.tiny, device)
    x = torch.rand(a.batch, 3, 64, 64, device=device)
    seconds = median_seconds(lambda: step(x), device, a.warmup, a.steps)
    rate, per_image = a.batch / seconds, peer_flops_per_image(a.tiny)
    return Row("peer", f"VanillaVAE-style, eager fp32, batch {a.batch}", a.batch, rate, rate * per_image / 1e12,
               100 * rate * per_image / peak, peak_memory_mb(device))


# ---- contention mode ------------------------------------------------------------------------------------------

# A competitor: one Python process spinning on the CPU until killed, or for at most `seconds` whatever happens.
SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"
WAIT_POLICIES = ("inherit", "default", "passive", "active")


@contextlib.contextmanager
def competing(n: int, seconds: float = 900.0, settle: float = 0.5):
    """`n` busy processes beside this one while the block runs; each is killed (by the handle we started it with)
    when the block ends, and would stop by itself after `seconds` anyway."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(seconds)], stdin=subprocess.DEVNULL) for _ in range(n)]
    try:
        time.sleep(settle)  # running at full speed before anything is measured
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


@dataclass
class ContentionRow:
    preset: str
    what: str
    policy: str
    idle: float = 0.0  # images/s
    busy: float = 0.0
    threads_idle: int = 0
    threads_busy: int = 0


def thread_settings() -> list[tuple[str, int]]:
    """(label, TrainConfig.threads) of the rows: 1 thread, every core PyTorch would use, the automatic choice."""
    every = ceiling()
    return [("1 thread", 1), (f"{every} threads fixed", every), ("automatic", 0)]


def trainer_rate(arch: ArchConfig, threads: int, cache: RandomCache, a: argparse.Namespace) -> tuple[float, int]:
    """images/s of core.training.loop.Trainer's own step (plain CPU path, uint8 cache) with TrainConfig.threads =
    `threads` (0: the trainer chooses), and the thread count it ran with."""
    config = RunConfig("bench-threads", arch=arch, loss=LossConfig(beta=4.0),
                       train=TrainConfig(batch_size=a.batch, device="cpu", mode="plain", threads=threads, val_images=8))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(create_run(config, Path(tmp)), dataset=cache, progress=False)
        steps = iter(range(10**9))
        try:
            seconds = median_seconds(lambda: trainer.train_step(next(steps)), torch.device("cpu"), a.warmup, a.steps)
        finally:
            trainer.feed.close()
    return a.batch / seconds, trainer.threads.threads


def peer_rate(threads: int, cache: RandomCache, a: argparse.Namespace) -> tuple[float, int]:
    """images/s of the peer step with the same thread choice, reading its batches from the same uint8 cache."""
    chosen = ThreadGovernor(threads).threads
    step, rng = make_peer_step(a.tiny, torch.device("cpu")), np.random.default_rng(0)

    def one() -> torch.Tensor:
        index = np.sort(rng.choice(len(cache), a.batch, replace=False))
        return step(torch.from_numpy(cache.images(index)).float().div_(255))

    return a.batch / median_seconds(one, torch.device("cpu"), a.warmup, a.steps), chosen


def contention_rows(a: argparse.Namespace, policy: str) -> list[ContentionRow]:
    """Every (preset or peer) x thread setting, idle and then beside the competitors, in this process."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = RandomCache(Path(tmp), a.cache_images)
        subjects = [(preset, tiny_arch(PRESETS[preset]) if a.tiny else PRESETS[preset]) for preset in a.presets]
        for busy in (False, True):
            with competing(a.competitors if busy else 0):
                for label, threads in thread_settings():
                    for preset, arch in [*subjects, ("peer", None)]:
                        what = "VanillaVAE-style step" if arch is None else "trainer step"
                        row = next((r for r in rows if (r.preset, r.what) == (preset, f"{what}, {label}")), None)
                        if row is None:
                            row = ContentionRow(preset, f"{what}, {label}", policy)
                            rows.append(row)
                        rate, chosen = (peer_rate(threads, cache, a) if arch is None
                                        else trainer_rate(arch, threads, cache, a))
                        if busy:
                            row.busy, row.threads_busy = rate, chosen
                        else:
                            row.idle, row.threads_idle = rate, chosen
    order = [*a.presets, "peer"]
    return sorted(rows, key=lambda r: order.index(r.preset))  # stable: each preset's thread settings in order


def contention_in_child(a: argparse.Namespace, policy: str) -> list[ContentionRow]:
    """contention_rows in a fresh process whose OMP_WAIT_POLICY is `policy` (default: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy.upper()
    command = [sys.executable, str(Path(__file__).resolve()), "--contention", "--wait-policies", "inherit", "--json",
               "--presets", ",".join(a.presets), "--competitors", str(a.competitors), "--steps", str(a.steps),
               "--warmup", str(a.warmup), "--batch", str(a.batch), "--cache-images", str(a.cache_images),
               *(["--tiny"] if a.tiny else [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the contention run with OMP_WAIT_POLICY={policy} failed:\n{done.stderr[-3000:]}")
    rows = [ContentionRow(**r) for r in json.loads(done.stdout.strip().splitlines()[-1])]
    for r in rows:
        r.policy = policy
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, as RESULTS.md holds them."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def contention_table(rows: list[ContentionRow]) -> str:
    return markdown_table(["preset", "setup", "OMP_WAIT_POLICY", "threads idle / busy", "idle images/s",
                           "under contention images/s"],
                          [[r.preset, r.what, r.policy, f"{r.threads_idle} / {r.threads_busy}", f"{r.idle:,.1f}",
                            f"{r.busy:,.1f}"] for r in rows])


def contention_verdicts(rows: list[ContentionRow]) -> list[str]:
    """The targets, per preset and wait policy: under contention the automatic choice keeps >= 80% of the best
    1-thread rate (idle or busy); idle it runs >= 1.6x the idle 1-thread rate."""
    lines = []
    for key in dict.fromkeys((r.preset, r.policy) for r in rows):
        group = {r.what.rsplit(", ", 1)[1]: r for r in rows if (r.preset, r.policy) == key}
        one, auto = group["1 thread"], group["automatic"]
        best_one = max(one.idle, one.busy)
        share, speedup = auto.busy / best_one, auto.idle / one.idle
        name = f"{key[0]} ({key[1]})"
        lines.append(f"{name}: automatic under contention {auto.busy:,.1f} images/s = {share:.0%} of the best "
                     f"1-thread rate {best_one:,.1f} (target >= 80%): {'met' if share >= 0.8 else 'NOT met'}")
        lines.append(f"{name}: automatic idle {auto.idle:,.1f} images/s = {speedup:.2f}x the 1-thread rate "
                     f"{one.idle:,.1f} (target >= 1.6x): {'met' if speedup >= 1.6 else 'NOT met'}")
    return lines


def tiny_arch(arch: ArchConfig) -> ArchConfig:
    return replace(arch, channels=(8, 8, 16, 16), hidden=32, latent_dim=8)


def table(rows: list[Row]) -> str:
    return markdown_table(["preset", "setup", "batch", "images/s", "TFLOP/s", "% of matmul peak", "peak memory (MiB)",
                           ""],
                          [[r.preset, r.what, str(r.batch), f"{r.images_per_s:,.1f}", f"{r.tflops:.3g}",
                            f"{r.percent:.3g}", f"{r.memory_mb:,.0f}", str(r.kept)] for r in rows])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--presets", help="comma-separated (default: standard,small; small with --contention)")
    p.add_argument("--steps", type=int,
                   help="timed steps per row (default: 10 on CUDA, 3 on CPU, 20 with --contention)")
    p.add_argument("--warmup", type=int,
                   help="untimed steps per row (default: 5 on CUDA, 1 on CPU, 3 with --contention)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--big-batch", type=int, help="the larger batch tried (default: 256 on CUDA, 128 on CPU)")
    p.add_argument("--cache-images", type=int, help="rows of the uint8 cache (default: 162,770 on CUDA, 4,096 on CPU)")
    p.add_argument("--tiny", "--smoke", action="store_true",
                   help="tiny networks and sizes: a smoke test, not a benchmark")
    p.add_argument("--no-synthfaces", action="store_true", help="skip the end-to-end SynthFaces row")
    p.add_argument("--epoch", action="store_true",
                   help="also train one whole epoch of the uint8 cache with the end-to-end trainer, timed")
    p.add_argument("--contention", action="store_true",
                   help="CPU threads: 1, all cores and the automatic choice, idle and beside busy processes")
    p.add_argument("--competitors", type=int, default=1,
                   help="busy processes beside the step (--contention; default 1)")
    p.add_argument("--wait-policies", default="inherit",
                   help=f"OMP_WAIT_POLICY values to compare with --contention, comma-separated from "
                        f"{', '.join(WAIT_POLICIES)} (default: inherit, this process's environment)")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # rows for the parent of a policy child
    a = p.parse_args(argv)
    if a.competitors < 1:
        p.error(f"--competitors {a.competitors}: must be at least 1")
    a.wait_policies = [w.strip().lower() for w in a.wait_policies.split(",") if w.strip()]
    unknown = [w for w in a.wait_policies if w not in WAIT_POLICIES]
    if unknown or not a.wait_policies:
        p.error(f"--wait-policies {','.join(unknown) or '(empty)'}: choose from {', '.join(WAIT_POLICIES)}")
    if not a.contention and (a.wait_policies != ["inherit"] or a.json):
        p.error("--wait-policies and --json belong to --contention")
    if a.contention and a.epoch:
        p.error("--epoch belongs to the throughput table, not to --contention")
    if a.contention and a.device not in ("auto", "cpu"):
        p.error(f"--contention measures CPU threads: --device {a.device} does not apply (leave it out)")
    a.presets = [name.strip() for name in (a.presets or ("small" if a.contention else "standard,small")).split(",")]
    missing = [name for name in a.presets if name not in PRESETS]
    if missing:
        p.error(f"--presets {','.join(missing)}: choose from {', '.join(PRESETS)}")
    for name in ("steps", "warmup", "batch", "big_batch", "cache_images"):
        value = getattr(a, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            p.error(f"--{name.replace('_', '-')} {value}: too small")
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.contention:
        return main_contention(a)
    device = pick_device(a.device)
    cuda = device.type == "cuda"
    if a.tiny:
        a.batch, a.big_batch, a.steps, a.warmup, a.cache_images = 8, 16, 2, 1, 64
        ThreadGovernor(0)  # a smoke test on a shared CI machine: as many threads as there are idle cores
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
        for preset in a.presets:
            arch = tiny_arch(PRESETS[preset]) if a.tiny else PRESETS[preset]
            rows += bench_preset(preset, arch, device, a, peak, cache)
    rows.append(progress(bench_peer(device, a, peak)))
    print(table(rows))
    for line in [note for r in rows for note in r.notes] + (gpu_verdicts(rows) if cuda else []):
        print(line)
    if cuda:
        largest = max(r.memory_mb for r in rows)
        print(f"peak GPU memory (torch.cuda.max_memory_allocated, largest row): {largest:,.0f} MiB")


def gpu_verdicts(rows: list[Row]) -> list[str]:
    """The GPU targets (for the `standard` preset; printed for each preset measured): end to end on the uint8 cache
    >= 100,000 images/s and >= 10x the eager fp32 batch-64 step."""
    lines = []
    for preset in dict.fromkeys(r.preset for r in rows if r.preset != "peer"):
        eager = next(r for r in rows if r.preset == preset and r.what.startswith("eager fp32"))
        cached = [r for r in rows if r.preset == preset and r.what.startswith("end to end") and "uint8 cache" in r.what]
        if not cached:
            continue
        rate, ratio = cached[0].images_per_s, cached[0].images_per_s / eager.images_per_s
        lines.append(f"{preset}: end to end on the uint8 cache {rate:,.0f} images/s (target >= 100,000: "
                     f"{'met' if rate >= 100_000 else 'NOT met'}), {ratio:.1f}x the {eager.what} step "
                     f"(target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")
    return lines


def main_contention(a: argparse.Namespace) -> None:
    if a.tiny:
        a.batch, a.steps, a.warmup, a.cache_images = 8, 2, 1, 256
    a.steps = a.steps or 20
    a.warmup = a.warmup if a.warmup is not None else 3
    a.cache_images = a.cache_images or 4096
    if a.wait_policies == ["inherit"]:
        policy = os.environ.get("OMP_WAIT_POLICY", "default")
        rows = contention_rows(a, f"inherit ({policy})" if not a.json else policy.lower())
        if a.json:
            print(json.dumps([r.__dict__ for r in rows]))
            return
    else:
        rows = [row for policy in a.wait_policies for row in
                (contention_rows(a, f"inherit ({os.environ.get('OMP_WAIT_POLICY', 'default')})") if policy == "inherit"
                 else contention_in_child(a, policy))]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"torch {torch.__version__} on the CPU: {cores} cores allowed, PyTorch default {ceiling()} threads; "
          f"{a.competitors} busy process(es) beside the step under contention; batch {a.batch}, "
          f"median of {a.steps} steps after {a.warmup}")
    print(contention_table(rows))
    for line in contention_verdicts(rows):
        print(line)


if __name__ == "__main__":
    main()
