import pytest
import torch

from core.config import PRESETS
from core.models.modvae import Clamp, FactorBlocks
from core.models.vae import VAE


@pytest.mark.parametrize("preset", ["small", "standard"])
def test_shapes_and_ranges(preset):
    model = VAE(PRESETS[preset])
    x = torch.rand(2, 3, 64, 64)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 64)
    images = model.decode(mu)
    assert images.shape == (2, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    out = model(x)
    assert out.logits.shape == (2, 3, 64, 64) and out.z.shape == (2, 64)
    assert model.sample(3).shape == (3, 3, 64, 64)


def test_training_mode_samples_with_the_given_noise_and_eval_mode_uses_the_mean():
    model = VAE(PRESETS["small"])
    x = torch.rand(4, 3, 64, 64)
    model.train()
    noise = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    out = model(x, noise)
    assert not torch.allclose(out.z, out.mu)
    torch.testing.assert_close(out.z, out.mu + noise * torch.exp(0.5 * out.logvar), rtol=0, atol=0)
    assert torch.equal(model(x, noise.clone()).z, out.z)  # the noise is the only randomness
    assert not torch.equal(model(x).z, out.z)  # no noise given: fresh noise from torch's generator
    model.eval()
    out = model(x, noise)
    assert torch.equal(out.z, out.mu) and out.group_mean is None


def test_bf16_autocast_keeps_the_noise_fp32():
    model = VAE(PRESETS["small"]).train()
    x, noise = torch.rand(2, 3, 64, 64), torch.randn(2, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, noise)
    assert out.mu.dtype == torch.bfloat16 and out.z.dtype == torch.float32
    expected = out.mu.float() + noise * torch.exp(0.5 * out.logvar.float())
    torch.testing.assert_close(out.z, expected, rtol=0.02, atol=0.02)


def test_factor_blocks_map_fixed_factors_to_dims():
    blocks = FactorBlocks(num_factors=3, dims_per_factor=2, latent_dim=8)
    assert blocks.block(1) == slice(2, 4)
    mask = blocks.dim_mask(torch.tensor([[True, False, True]]))
    assert mask.tolist() == [[True, True, False, False, True, True, False, False]]  # free dims 6, 7 never clamped
    with pytest.raises(ValueError, match="latent_dim"):
        FactorBlocks(num_factors=5, dims_per_factor=4, latent_dim=16)


def test_modvae_clamp_replaces_fixed_dims_by_group_mean_before_decoding():
    model = VAE(PRESETS["small"]).train()
    blocks = FactorBlocks(num_factors=2, dims_per_factor=4, latent_dim=64)
    fixed = torch.tensor([[True, False]] * 3 + [[False, True]] * 3)
    clamp = Clamp(blocks.dim_mask(fixed), group_size=3)  # rows 0-2 are group 0, rows 3-5 group 1
    x = torch.rand(6, 3, 64, 64)
    out = model(x, torch.randn(6, 64), clamp)
    # group 0 fixes factor 0 (dims 0-3): identical codes there, equal to the mean of the encoder means
    assert torch.allclose(out.z[:3, :4], out.mu[:3, :4].mean(0).expand(3, 4), atol=1e-6)
    assert torch.allclose(out.z[3:, 4:8], out.mu[3:, 4:8].mean(0).expand(3, 4), atol=1e-6)
    # unclamped dims keep their own samples
    assert not torch.allclose(out.z[:3, 4:8], out.z[0, 4:8].expand(3, 4))
    assert not torch.allclose(out.z[:, 8:], out.mu[:, 8:])
    # the group mean the clamp used rides on the output (for the loss), computed once
    torch.testing.assert_close(out.group_mean, clamp.group_mean(out.mu), rtol=0, atol=0)
    assert torch.equal(out.z[:3, :4], out.group_mean[:3, :4])
    out.logits.sum().backward()  # gradients reach the encoder through the group mean
    assert model.encoder.head[-1].weight.grad.abs().sum() > 0


def test_group_mean_is_the_mean_over_each_contiguous_group_and_needs_whole_groups():
    v = torch.arange(12.0).reshape(6, 2)
    clamp = Clamp(torch.ones(6, 2, dtype=torch.bool), group_size=2)
    expected = torch.tensor([[1.0, 2.0]] * 2 + [[5.0, 6.0]] * 2 + [[9.0, 10.0]] * 2)
    assert torch.equal(clamp.group_mean(v), expected)
    assert clamp.group_mean(v.bfloat16()).dtype == torch.float32  # group statistics in fp32 on the fast path
    with pytest.raises(ValueError, match="groups of 4"):
        Clamp(torch.ones(6, 2, dtype=torch.bool), group_size=4)


def test_a_film_decoder_passes_gradient_to_a_code_its_mlp_ignores():
    """The FiLM decoder's point: with the 4x4 map the same for every code (as for a detail not yet encoded), the
    plain decoder's pixels do not depend on z at all; the FiLM decoder's still do."""
    from dataclasses import replace

    from core.models.networks import Decoder

    torch.manual_seed(0)
    z = torch.randn(4, 64, requires_grad=True)
    for design, moves in (("plain", False), ("film", True)):
        decoder = Decoder(replace(PRESETS["small"], decoder=design))
        with torch.no_grad():
            decoder.head[0].weight.zero_()  # the MLP's output no longer depends on z
        decoder(z).sum().backward()
        assert (z.grad.abs().sum() > 0) == moves, design
        z.grad = None
    plain = VAE(replace(PRESETS["small"], decoder="plain"))
    assert not any("film" in k for k in plain.state_dict())  # plain runs' checkpoints unchanged


def test_a_film_run_trains_and_reloads_from_its_folder(tmp_path):
    from core.data.dsprites import DSprites
    from core.training.loop import train
    from tests.tiny import tiny_config

    config = tiny_config("film", steps=10)
    config.arch.decoder = "film"
    run = train(config.validate(), tmp_path, progress=False, dataset=DSprites())
    assert run.config.arch.decoder == "film"
    model = run.load_model()
    assert any("film" in k for k in model.state_dict())
    assert model.decode(torch.zeros(2, 8)).shape == (2, 3, 64, 64)
