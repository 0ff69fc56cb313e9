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
from core.training.conditions import condition_mean, condition_rows, with_conditions
from core.config import RunConfig
from core.data import Dataset, load_dataset
from core.training.cancel import CancellableSetup
from core.training.failures import Diverged, OutOfMemory, check_loss, diverged_advice, kept_checkpoint
from core.training.feed import Feed, Masks, needs_masks
from core.device import pick_device, to_float
from core.data.images import grid, save_png
from core.objectives.objective import Objective
from core.objectives.schedules import LearningRate
from core.models.modvae import Clamp, FactorBlocks
from core.runs.folder import Run, create_run
from core.training.speed import Speedups
from core.training.threads import ThreadGovernor


logger = logging.getLogger(__name__)


class Trainer:
    """Trains one run folder: data, model, optimizer and feed built from its config; `fit` trains to train.steps."""

    def __init__(self, run: Run, dataset: Dataset | None = None, progress: bool = True):
        self.main = distributed.is_main()
        self.run, self.config, self.progress = run, run.config, progress and self.main
        cfg = self.config
        distributed.check_batch_size(cfg.train.batch_size)
        # --threads N fixes the CPU thread count; 0 chooses it from the machine's load and re-checks it in fit()
        self.threads = ThreadGovernor(cfg.train.threads)
        self.device = distributed.local_device(pick_device(cfg.train.device))
        self.dataset = dataset if dataset is not None else load_dataset(cfg.data, progress=self.progress)
        if cfg.family.conditional:  # y's width comes from the data set; a run reserved by jobs.launch records it now
            filled = with_conditions(cfg, self.dataset)
            if filled.arch.cond_dim != cfg.arch.cond_dim and self.main:
                run.write_config(filled)
            self.config = cfg = filled
        self.batches = make_batches(self.dataset, cfg.model, cfg.train.batch_size, cfg.modvae.group_size, cfg.train.seed)
        distributed.check_batch_size(cfg.train.batch_size, self.batches.group_size)  # whole groups on every rank
        self.feed = Feed(self.dataset, lambda step: distributed.shard_batch(self.batches(step)), self.device,
                         progress=self.progress,
                         conditions=condition_rows(self.dataset) if cfg.family.conditional else None,
                         masks=needs_masks(cfg.arch.mask_head, cfg.loss.recon_region, self.dataset))
        self.speed = Speedups.for_run(cfg.train.mode, cfg.train.compile, self.device)
        torch.manual_seed(cfg.train.seed)
        self.model = self.speed.prepare(cfg.family.build(cfg.arch).to(self.device))
        if cfg.family.conditional:  # what y=None means, saved with the weights
            self.model.set_condition_mean(condition_mean(self.dataset))
        # DDP under torchrun, else self.model; compiled if asked
        self.train_model = self.speed.forward(distributed.wrap(self.model, self.device))
        self.optimizer = self.speed.optimizer(self.model.parameters(), cfg.train.lr)
        # a pure function of the step, so resume needs no scheduler state
        self.lr = LearningRate(cfg.train.lr, cfg.train.lr_warmup_steps, cfg.train.lr_decay, cfg.train.steps)
        # the regularisers' own modules (FactorVAE's discriminator) are built after the model, from the same seed
        self.objective = Objective(cfg.loss, cfg.family.regularisers, cfg.arch.latent_dim,
                                   len(self.dataset.indices("train")), cfg.arch.mask_head).to(self.device)
        self.blocks = (FactorBlocks(self.batches.num_factors, cfg.modvae.dims_per_factor, cfg.arch.latent_dim)
                       if cfg.family.grouped else None)
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
            if missing := self.run.load_extra(self.objective.modules, self.objective.optimizers):
                logger.warning("%s holds no state of %s (saved without it): resuming with fresh ones, so the next "
                               "steps differ from an uninterrupted run", self.run.checkpoint_path, ", ".join(missing))
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
        # the mask is built on the host and copied once (no device op that could sync); the batch's rows come in
        # contiguous groups of batches.group_size (core.training.batches), which is all the clamp needs to know
        mask = self.blocks.dim_mask(torch.from_numpy(batch.fixed))
        return Clamp(mask.to(self.device, non_blocking=True), self.batches.group_size)

    def _conditions(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """{"y": the images' attribute rows on the device} for a conditional family, else {}: keyword arguments."""
        if self.feed.conditions is None:
            return {}
        return {"y": torch.from_numpy(self.feed.conditions[index]).to(self.device)}

    def _masks(self, index: np.ndarray) -> Masks | None:
        """The images' person masks on the device when training uses them (as the feed gives them), else None."""
        if not self.feed.masks:
            return None
        masks, known = self.dataset.masks(index)
        return to_float(masks, self.device), torch.from_numpy(known).to(self.device)

    def _generator(self, step: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.config.train.seed * 1_000_003 + step)
        return g

    def _regulariser_generator(self, step: int) -> torch.Generator:
        """The step's generator for the regularisers' own randomness (FactorVAE's permutations), a pure function of
        (seed, step) apart from the noise's (the top bit of the seed tells the streams apart)."""
        g = torch.Generator(device=self.device)
        g.manual_seed((self.config.train.seed * 1_000_003 + step) | 1 << 62)
        return g

    def _noise(self, step: int) -> torch.Tensor:
        """The step's reparameterisation noise, fp32 on every path, a pure function of (seed, step) (so resume is
        exact); under torchrun this rank's rows of it. Drawn here, not in the model, so the compiled forward holds
        no generator."""
        return distributed.rank_noise(self._generator(step), self.config.train.batch_size, self.config.arch.latent_dim)

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        """One optimizer step on batch `step`; the loss terms as detached device tensors (no host sync)."""
        batch, x, y, masks = self.feed.fetch(step)
        x = self.speed.images(x)
        given = {} if y is None else {"y": y}  # a conditional family's attribute rows
        clamp = self._clamp(batch)
        noise = self._noise(step)
        with self.speed.autocast(self.device):
            out = self.train_model(x, noise, clamp, **given)
        out = out.float()
        generator = self._regulariser_generator(step) if self.objective.modules else None
        terms = self.objective(out, x, step, clamp, generator, masks)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr(step)
        self.optimizer.step()
        terms.update(self.objective.update(out, clamp, generator))  # the regularisers' own steps, after the model's
        return {k: v.detach() for k, v in terms.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """recon, kl and neg_elbo (their sum), per-image means over the fixed validation subset, with z = mu."""
        self.model.eval()
        recon = kl = 0.0
        for chunk in np.array_split(self.val_index, max(1, len(self.val_index) // 256)):
            x = to_float(self.dataset.images(chunk), self.device)
            terms = self.objective(self.model(x, **self._conditions(chunk)), x, self.config.train.steps,
                                   masks=self._masks(chunk))
            recon += terms["recon"].item() * len(chunk)
            kl += terms["kl"].item() * len(chunk)
        self.model.train()
        n = len(self.val_index)
        return {"recon": recon / n, "kl": kl / n, "neg_elbo": (recon + kl) / n}

    @torch.no_grad()
    def save_samples(self) -> None:
        """samples/recon_<step>.png (8 val images over their reconstructions) and prior_<step>.png (16 draws).
        The prior codes are the same at every step, so the grids show how the decoder changes."""
        self.model.eval()
        x = to_float(self.dataset.images(self.show_index), self.device)
        given = self._conditions(self.show_index)
        recon = self.model.decode(self.model.encode(x, **given)[0], **given)
        folder = self.run.folder("samples")  # a symbolic link in its place is refused, never written through
        save_png(folder / f"recon_{self.step:07d}.png", grid(torch.cat([x, recon]), 8), scale=2)
        prior = self.model.sample(16, self._generator(-1))
        save_png(folder / f"prior_{self.step:07d}.png", grid(prior, 8), scale=2)
        self.model.train()

    def checkpoint(self) -> None:
        """Save weights and Adam state at self.step (rank 0 only); Diverged instead if a weight is NaN or inf."""
        if not self.main:
            return
        if not all(torch.isfinite(p).all() for p in [*self.model.parameters(), *self.objective.modules.parameters()]):
            raise Diverged(f"the weights hold NaN or inf at step {self.step}: "
                           f"{diverged_advice(self.config.train.lr)}; {kept_checkpoint(self.run)}")
        self.run.save_checkpoint(self.model, self.optimizer, self.step, extra=self.objective.modules,
                                 extra_optimizers=self.objective.optimizers)

    def _status(self, state: str, **extra) -> None:
        if not self.main:
            return
        self.run.write_status(state, pid=os.getpid(), step=self.step, total_steps=self.config.train.steps,
                              device=str(self.device), **extra)

    def fit(self) -> Run:
        """Train from self.step to train.steps or SIGTERM: log, validate, sample and checkpoint on schedule; the run."""
        cfg = self.config.train
        val_every = cfg.val_every or self.batches.steps_per_epoch
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if _main_thread() else None
        self._status("running", speedups=self.speed.names(), feed=self.feed.describe(), **self.threads.describe())
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
                    if self.threads.recheck(self.step):  # the load changed: CPU threads re-chosen, status says so
                        self._status("running", speedups=self.speed.names(), feed=self.feed.describe(),
                                     **self.threads.describe())
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
                       f"with --batch-size {smaller} (or a smaller --preset); {kept_checkpoint(self.run)}")
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
        check_loss(loss, means["kl_dims"], self.best_loss, self.step, self.config.train.lr, self.run)
        self.best_loss = min(self.best_loss, loss)
        record = {"type": "train", "step": self.step, "epoch": self.batches.epoch(self.step),
                  **{k: means[k] for k in ("loss", "recon", "kl", "kl_dims")},
                  "beta": self.objective.beta(self.step), "lr": self.optimizer.param_groups[0]["lr"],
                  "images_per_s": images_per_s, "wall": self.wall}
        record.update({name: means[name] for name in self.objective.logged})  # every regulariser term, by name
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
        self._stop = distributed.any_rank(self._stop)
        return self._stop


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(config: RunConfig, runs_dir: Path | None = None, progress: bool = True, dataset: Dataset | None = None) -> Run:
    """Create a run folder for `config` and train it to the end. Every check a config can fail (its values, the
    device, the data, the batch over processes and groups) runs before the folder is created."""
    config.validate()
    pick_device(config.train.device)  # tpu, cuda:N beyond the GPUs here, CUDA without CUDA: ConfigError
    dataset = dataset if dataset is not None else load_dataset(config.data, progress=progress)
    batches = make_batches(dataset, config.model, config.train.batch_size, config.modvae.group_size, config.train.seed)
    distributed.check_batch_size(config.train.batch_size, batches.group_size)  # before a run folder exists
    config = with_conditions(config, dataset)  # a conditional family records its data set's attribute count
    run = distributed.on_main(lambda: create_run(config, runs_dir), lambda run: str(run.path), Run)
    with CancellableSetup(run) as setup:
        trainer = _trainer(run, dataset, progress)
    return run if setup.agreed() else trainer.fit()


def _trainer(run: Run, dataset: Dataset | None, progress: bool) -> Trainer:
    """A Trainer for `run`; a failure to build it (e.g. its data set is gone) is recorded in status.json."""
    try:
        return Trainer(run, dataset, progress)
    except Exception as e:
        if distributed.is_main():
            run.write_status("failed", error=str(e))
        raise


def resume(run: Run, steps: int | None = None, progress: bool = True, dataset: Dataset | None = None) -> Run:
    """Continue `run` from its last checkpoint, optionally to a new total number of steps. Refused (RunError) while
    another live process trains it: there is one writer per run folder."""
    if distributed.is_main():
        if steps is not None:
            config = run.config
            config.train.steps = steps
            config.validate()
        with run.job_lock():
            run.claim()  # status.json now names this process, so a second resume is refused from here on
        if steps is not None:
            run.write_config(config)
    distributed.barrier()  # the other ranks read the new config after rank 0 wrote it
    with CancellableSetup(run) as setup:
        trainer = _trainer(run, dataset, progress)
        trainer.resume()
    return run if setup.agreed() else trainer.fit()
