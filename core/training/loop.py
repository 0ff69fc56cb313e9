"""The training loop: short enough to read in one sitting.

Data order and sampling noise depend only on (seed, step), and the checkpoint holds weights and Adam
state, so `resume` continues exactly where a run stopped. SIGTERM ends the run cleanly with a checkpoint.
Under torchrun each process trains on its slice of every batch (core.distributed); only rank 0 writes the run folder.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.training import distributed
from core.training.batches import Batch, make_batches
from core.config import RunConfig
from core.data import Dataset, load_dataset
from core.training.feed import Feed
from core.device import pick_device, to_float
from core.data.images import grid, save_png
from core.objectives.objective import Objective
from core.models.modvae import Clamp, FactorBlocks
from core.models.vae import VAE
from core.runs.folder import Run, RunError, create_run
from core.training.speed import Speedups


logger = logging.getLogger(__name__)


# A logged loss this many times the lowest one so far means the run has diverged (a spike is a few times).
EXPLOSION = 100.0


class Diverged(RuntimeError):
    pass


class OutOfMemory(RunError):
    """The accelerator (or host) ran out of memory: the message suggests a smaller batch."""


class Trainer:
    def __init__(self, run: Run, dataset: Dataset | None = None, progress: bool = True):
        self.main = distributed.is_main()
        self.run, self.config, self.progress = run, run.config, progress and self.main
        cfg = self.config
        distributed.check_batch_size(cfg.train.batch_size)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.device = distributed.local_device(pick_device(cfg.train.device))
        self.dataset = dataset if dataset is not None else load_dataset(cfg.data, progress=self.progress)
        self.batches = make_batches(self.dataset, cfg.model, cfg.train.batch_size, cfg.modvae.group_size, cfg.train.seed)
        self.feed = Feed(self.dataset, lambda step: distributed.shard_batch(self.batches(step)), self.device,
                         progress=self.progress)
        self.speed = Speedups.for_run(cfg.train.mode, cfg.train.compile, self.device)
        torch.manual_seed(cfg.train.seed)
        self.model = self.speed.prepare(VAE(cfg.arch).to(self.device))
        # DDP under torchrun, else self.model; compiled if asked
        self.train_model = self.speed.forward(distributed.wrap(self.model, self.device))
        self.optimizer = self.speed.optimizer(self.model.parameters(), cfg.train.lr)
        self.objective = Objective(cfg.loss)
        self.blocks = (FactorBlocks(self.batches.num_factors, cfg.modvae.dims_per_factor, cfg.arch.latent_dim)
                       if cfg.model == "modvae" else None)
        self.val_index = self._fixed_subset("val", cfg.train.val_images)
        # shown in the sample grids: spread over the subset, whose sorted order groups similar images on grid data
        self.show_index = self.val_index[np.linspace(0, len(self.val_index) - 1, 8).round().astype(int)]
        self.step, self.wall = 0, 0.0
        self.best_loss = math.inf  # lowest logged training loss, to tell an explosion from noise
        self._stop = False

    def _fixed_subset(self, split: str, n: int) -> np.ndarray:
        index = self.dataset.indices(split)
        if len(index) == 0:
            index = self.dataset.indices("train")
        rng = np.random.default_rng([self.config.train.seed, 3])
        return np.sort(rng.choice(index, size=min(n, len(index)), replace=False))

    def resume(self) -> None:
        """Continue from the last checkpoint. A folder with none yet (reserved by core.jobs.launch, or stopped
        before its first checkpoint) starts at step 0."""
        if self.main:
            self.run.remove_partial_writes()
        if self.run.checkpoint_path.is_file():
            self.model.load_state_dict(self.run.load_model(self.device).state_dict())
            self.run.load_optimizer(self.optimizer)
            self.step = self.run.checkpoint_step()
            if not self.optimizer.state:
                logger.warning("%s holds weights only (no optimizer state, e.g. an exported demo run): resuming "
                               "with a fresh Adam, so the next steps differ from an uninterrupted run",
                               self.run.checkpoint_path)
        if self.main:
            self.run.truncate_metrics(self.step)
        last = self.run.metrics("train")
        self.wall = last[-1].get("wall", 0.0) if last else 0.0
        self.best_loss = min((r["loss"] for r in last if isinstance(r.get("loss"), (int, float))), default=math.inf)

    def _clamp(self, batch: Batch) -> Clamp | None:
        if self.blocks is None:
            return None
        fixed = torch.from_numpy(batch.fixed).to(self.device, non_blocking=True)
        groups = torch.from_numpy(batch.groups).to(self.device, non_blocking=True)
        return Clamp(groups, self.blocks.dim_mask(fixed), int(batch.groups.max()) + 1)

    def _generator(self, step: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.config.train.seed * 1_000_003 + step)
        return g

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        batch, x = self.feed(step)
        x = self.speed.images(x)
        clamp = self._clamp(batch)
        generator = self._generator(step)
        distributed.skip_noise(generator, self.config.train.batch_size, self.config.arch.latent_dim)
        with self.speed.autocast(self.device):
            out = self.train_model(x, generator, clamp)
        terms = self.objective(out.float(), x, step, clamp)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        return {k: v.detach() for k, v in terms.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        recon = kl = 0.0
        for chunk in np.array_split(self.val_index, max(1, len(self.val_index) // 256)):
            x = to_float(self.dataset.images(chunk), self.device)
            terms = self.objective(self.model(x), x, self.config.train.steps)
            recon += terms["recon"].item() * len(chunk)
            kl += terms["kl"].item() * len(chunk)
        self.model.train()
        n = len(self.val_index)
        return {"recon": recon / n, "kl": kl / n, "neg_elbo": (recon + kl) / n}

    @torch.no_grad()
    def save_samples(self) -> None:
        self.model.eval()
        x = to_float(self.dataset.images(self.show_index), self.device)
        recon = self.model.decode(self.model.encode(x)[0])
        folder = self.run.path / "samples"
        save_png(folder / f"recon_{self.step:07d}.png", grid(torch.cat([x, recon]), 8), scale=2)
        prior = self.model.sample(16, self._generator(-1))
        save_png(folder / f"prior_{self.step:07d}.png", grid(prior, 8), scale=2)
        self.model.train()

    def checkpoint(self) -> None:
        if not self.main:
            return
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise Diverged(f"the weights hold NaN or inf at step {self.step}: lower --lr or add --warmup-steps; "
                           "the last good checkpoint is kept")
        self.run.save_checkpoint(self.model, self.optimizer, self.step)

    def _status(self, state: str, **extra) -> None:
        if not self.main:
            return
        self.run.write_status(state, pid=os.getpid(), step=self.step, total_steps=self.config.train.steps,
                              device=str(self.device), **extra)

    def fit(self) -> Run:
        cfg = self.config.train
        val_every = cfg.val_every or self.batches.steps_per_epoch
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if _main_thread() else None
        self._status("running", speedups=self.speed.names(), feed=self.feed.describe())
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        count, t_last = 0, time.perf_counter()
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True)
        try:
            while self.step < cfg.steps and not self._stopping():
                terms = self.train_step(self.step)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0) + v
                count += 1
                self.step += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    self.wall += now - t_last
                    record = self._train_record(sums, count, count * cfg.batch_size / (now - t_last))
                    bar.set_postfix(loss=f"{record['loss']:.1f}", kl=f"{record['kl']:.1f}")
                    sums, count, t_last = {}, 0, now
                if not self.main:
                    continue
                if self.step % val_every == 0 or self.step == cfg.steps:
                    self.run.append_metrics({"type": "val", "step": self.step,
                                             "epoch": self.batches.epoch(self.step), **self.validate()})
                if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                    self.save_samples()
                if self.step % cfg.checkpoint_every == 0:
                    self.checkpoint()
        except Diverged as e:
            self._status("failed", error=str(e))
            raise
        except torch.OutOfMemoryError:
            smaller = max(1, cfg.batch_size // 2)
            message = (f"out of memory on {self.device} at batch size {cfg.batch_size} (step {self.step}): train again "
                       f"with --batch-size {smaller} (or a smaller --preset); the last checkpoint is kept")
            self._status("failed", error=message)
            raise OutOfMemory(message) from None
        except BaseException as e:
            self._status("failed", error=f"{type(e).__name__}: {e}")
            self.checkpoint()  # keep the work done so far (refused if the weights are no longer finite)
            raise
        finally:
            bar.close()
            self.feed.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        self.checkpoint()
        self._status("cancelled" if self._stop else "finished")
        return self.run

    def _train_record(self, sums: dict[str, torch.Tensor], count: int, images_per_s: float) -> dict:
        # one host sync (and under torchrun one all-reduce) per logging interval
        means = {k: (v / count).tolist() for k, v in distributed.mean_over_ranks(sums).items()}
        loss = means["loss"]
        # Finite is not enough: an Adam blow-up can sit at 1e26 for thousands of steps before overflowing.
        exploded = self.best_loss > 0 and loss > EXPLOSION * self.best_loss
        if exploded or not all(math.isfinite(x) for x in [loss, *means["kl_dims"]]):
            raise Diverged(f"the loss became {loss:.4g} at step {self.step} (lowest so far {self.best_loss:.4g}): "
                           "lower --lr or add --warmup-steps; the last checkpoint before this is kept")
        self.best_loss = min(self.best_loss, loss)
        record = {"type": "train", "step": self.step, "epoch": self.batches.epoch(self.step),
                  **{k: means[k] for k in ("loss", "recon", "kl", "kl_dims")},
                  "beta": self.objective.beta(self.step), "lr": self.optimizer.param_groups[0]["lr"],
                  "images_per_s": images_per_s, "wall": self.wall}
        if "clamp" in means:
            record["clamp"] = means["clamp"]
        if self.main:
            self.run.append_metrics(record)
        return record

    def _on_sigterm(self, signum, frame) -> None:
        self._stop = True

    def _stopping(self) -> bool:
        """Ranks must stop after the same step, so under torchrun they compare stop flags at logging intervals."""
        if distributed.world() == 1:
            return self._stop
        if self.step % self.config.train.log_every:
            return False
        self._stop = distributed.any_rank(self._stop, self.device)
        return self._stop


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(config: RunConfig, runs_dir: Path | None = None, progress: bool = True, dataset: Dataset | None = None) -> Run:
    """Create a run folder for `config` and train it to the end."""
    config.validate()
    dataset = dataset if dataset is not None else load_dataset(config.data, progress=progress)
    distributed.check_batch_size(config.train.batch_size)  # before a run folder exists
    run = distributed.on_main(lambda: create_run(config, runs_dir), lambda run: str(run.path), Run)
    return _trainer(run, dataset, progress).fit()


def _trainer(run: Run, dataset: Dataset | None, progress: bool) -> Trainer:
    """A Trainer for `run`; a failure to build it (e.g. its data set is gone) is recorded in status.json."""
    try:
        return Trainer(run, dataset, progress)
    except Exception as e:
        if distributed.is_main():
            run.write_status("failed", error=str(e))
        raise


def resume(run: Run, steps: int | None = None, progress: bool = True, dataset: Dataset | None = None) -> Run:
    """Continue `run` from its last checkpoint, optionally to a new total number of steps."""
    if steps is not None and distributed.is_main():
        config = run.config
        config.train.steps = steps
        run.write_config(config.validate())
    distributed.barrier()  # the other ranks read the new config after rank 0 wrote it
    trainer = _trainer(run, dataset, progress)
    trainer.resume()
    return trainer.fit()
