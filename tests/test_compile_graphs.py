"""The training forward is one torch.compile graph: no graph break, for the VAE and for ModVAE, on the plain and
the fast (bf16 autocast, channels_last) paths.

It is traced exactly as Trainer.train_step calls it: the trainer's own images, noise and clamp for step 0.
A break would come back with a generator passed into the model (the noise is drawn by the trainer instead),
a host sync or a data-dependent shape in the clamp (torch.bincount: group means are a reshape instead).
Measured before this was fixed: the VAE forward was 3 graphs (2 breaks), ModVAE's 6 graphs (5 breaks).
Dynamo tracing only (torch._dynamo.explain): no Inductor compilation, so it runs on CPU in seconds.
"""
from __future__ import annotations

import pytest
import torch
import torch._dynamo

from core.data.dsprites import DSprites
from core.runs.folder import create_run
from core.training.loop import Trainer
from tests.tiny import tiny_config

DATA = DSprites()


@pytest.mark.parametrize("mode", ["plain", "fast"])
@pytest.mark.parametrize("model", ["beta-vae", "modvae"])
def test_the_training_forward_is_one_graph_without_breaks(tmp_path, model, mode):
    config = tiny_config(f"{model}-{mode}", model=model, steps=1, mode=mode)
    if model == "modvae":
        config.modvae.dims_per_factor = 1
        config.modvae.group_size = 8
    trainer = Trainer(create_run(config, tmp_path), DATA, progress=False)
    try:
        batch, x = trainer.feed(0)
        x, clamp, noise = trainer.speed.images(x), trainer._clamp(batch), trainer._noise(0)
    finally:
        trainer.feed.close()
    assert (clamp is not None) == (model == "modvae")
    assert noise.dtype == torch.float32 and noise.shape == (16, config.arch.latent_dim)
    trainer.model.train()
    with trainer.speed.autocast(trainer.device):
        explained = torch._dynamo.explain(trainer.train_model)(x, noise, clamp)
    reasons = [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1 and explained.graph_break_count == 0 and not reasons, reasons
    # ModVAE's forward hands its group mean on to the loss, which does not compute it again
    with trainer.speed.autocast(trainer.device):
        out = trainer.train_model(x, noise, clamp)
    assert (out.group_mean is not None) == (model == "modvae")


@pytest.mark.parametrize("model", ["beta-vae", "modvae"])
def test_compiled_training_steps_reuse_one_graph(tmp_path, model):
    """Fresh noise and a fresh clamp every step hit the graph compiled at step 0: one graph compiled over three
    real training steps, no recompilation (a counting backend: no Inductor compile on CPU)."""
    config = tiny_config(f"steps-{model}", model=model, steps=3)
    config.modvae.dims_per_factor, config.modvae.group_size = 1, 8
    trainer = Trainer(create_run(config, tmp_path), DATA, progress=False)
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    trainer.train_model = torch.compile(trainer.model, backend=counting_backend)
    try:
        losses = torch.stack([trainer.train_step(step)["loss"] for step in range(3)])
    finally:
        trainer.feed.close()
        torch._dynamo.reset()
    assert len(graphs) == 1 and torch.isfinite(losses).all()
