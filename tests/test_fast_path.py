"""The CUDA fast path (core.training.speed) and the data feed (core.training.feed): same numbers as the plain path, within tolerance.

The fast path is forced on CPU here (bf16 autocast, channels_last and fused Adam all exist on CPU), so CI checks
its numerics without a GPU; the CUDA-only checks at the bottom skip, loudly, where no GPU is present.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.training.batches import ShuffledBatches, make_batches
from core.cli import build_parser, config_from_args
from core.config import ConfigError, DataConfig
from core.data import load_dataset
from core.training.feed import Feed
from core.training.speed import Speedups
from core.training.loop import Trainer, train
from core.runs.folder import create_run
from tests.tiny import Subset, tiny_config

SYNTH = load_dataset(DataConfig("synthfaces"))
# Measured on CPU over 60 steps of the tiny model: largest relative loss difference 1.5e-4 (bf16 rounds to
# 3 significant digits; the losses are summed in fp32). An order of magnitude more would mean a real bug.
TOLERANCE = 2e-3


def loss_curve(tmp_path, mode: str, device: str = "cpu", steps: int = 60) -> np.ndarray:
    config = tiny_config(f"{mode}-{device}", dataset="synthfaces", steps=steps, mode=mode, device=device, log_every=5)
    run = train(config, tmp_path, progress=False, dataset=SYNTH)
    return np.array([r["loss"] for r in run.metrics("train")])


def test_fast_and_plain_paths_give_the_same_losses_within_tolerance(tmp_path):
    plain, fast = loss_curve(tmp_path, "plain"), loss_curve(tmp_path, "fast")
    relative = np.abs(fast - plain) / plain
    assert relative.max() < TOLERANCE
    assert relative.max() > 0  # bf16 really ran: identical curves would mean the fast path was not taken
    assert plain[-1] < plain[0] and fast[-1] < fast[0]


def test_auto_mode_is_plain_on_cpu_and_the_status_says_which_path_ran(tmp_path):
    trainer = Trainer(create_run(tiny_config("auto", steps=2), tmp_path), progress=False)
    assert trainer.speed == Speedups()
    trainer.fit()
    fast = Trainer(create_run(tiny_config("forced", steps=2, mode="fast"), tmp_path), progress=False)
    assert fast.speed.names() == ["bf16", "channels_last", "fused_adam"]
    assert fast.model.encoder.conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    fast.fit()
    assert fast.run.status()["state"] == "finished"


def test_resident_and_streamed_feeds_serve_the_same_pixels():
    small = Subset(SYNTH, 2000)
    batches = ShuffledBatches(small, batch_size=16, seed=3)
    resident = Feed(small, batches, torch.device("cpu"), resident=True)
    streamed = Feed(small, batches, torch.device("cpu"), resident=False)
    try:
        for step in [0, 1, 2, 7, 3, 4, 4]:  # in order (read ahead), skipping ahead, going back, repeating
            (b1, x1), (b2, x2) = resident(step), streamed(step)
            assert np.array_equal(b1.index, batches(step).index) and np.array_equal(b1.index, b2.index)
            expected = torch.from_numpy(small.images(b1.index)).float() / 255
            assert torch.equal(x1, expected) and torch.equal(x2, expected)
    finally:
        streamed.close()


def test_modvae_batches_flow_through_the_feed():
    batches = make_batches(SYNTH, "modvae", 32, 8, seed=0)
    feed = Feed(SYNTH, batches, torch.device("cpu"))
    try:
        batch, x = feed(5)
        assert x.shape == (32, 3, 64, 64) and x.dtype == torch.float32
        assert torch.equal(x, torch.from_numpy(SYNTH.images_from_factors(SYNTH.index_to_factors(batch.index))) / 255)
    finally:
        feed.close()


def test_cli_speed_flags_set_the_mode():
    parser = build_parser()
    for flags, mode, compiled in [([], "auto", False), (["--plain"], "plain", False),
                                  (["--fast", "--compile"], "fast", True)]:
        argv = ["train", "--name", "x", *flags]
        config = config_from_args(parser.parse_args(argv))
        assert (config.train.mode, config.train.compile) == (mode, compiled)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--fast", "--plain"])
    config.train.mode = "turbo"
    with pytest.raises(ConfigError, match="train.mode = 'turbo'"):
        config.validate()


cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="NO CUDA GPU HERE: the CUDA fast-path checks did not run (run them on a GPU machine)")


@cuda
@pytest.mark.parametrize("model", ["beta-vae", "modvae"])
def test_cuda_uses_the_fast_path_and_resident_data_by_default_and_its_step_never_waits_for_the_gpu(tmp_path, model):
    config = tiny_config(f"cuda-auto-{model}", model=model, steps=2, device="cuda")
    config.modvae.dims_per_factor, config.modvae.group_size = 1, 8  # ModVAE: its clamp and group means too
    trainer = Trainer(create_run(config, tmp_path), progress=False)
    assert trainer.speed.names() == ["bf16", "channels_last", "fused_adam"]
    assert trainer.feed.store is not None and trainer.feed.store.device.type == "cuda"
    trainer.train_step(0)  # first step: lazy CUDA initialisation may synchronise
    torch.cuda.set_sync_debug_mode("error")  # any synchronising CUDA call in the step now raises
    try:
        for step in range(1, 6):
            trainer.train_step(step)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@cuda
def test_cuda_fast_and_plain_paths_agree_within_tolerance(tmp_path):
    plain, fast = loss_curve(tmp_path, "plain", "cuda"), loss_curve(tmp_path, "auto", "cuda")
    assert (np.abs(fast - plain) / plain).max() < TOLERANCE
