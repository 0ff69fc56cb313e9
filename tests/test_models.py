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


def test_training_mode_samples_and_eval_mode_uses_the_mean():
    model = VAE(PRESETS["small"])
    x = torch.rand(4, 3, 64, 64)
    model.train()
    g = torch.Generator().manual_seed(0)
    out = model(x, g)
    assert not torch.allclose(out.z, out.mu)
    again = model(x, torch.Generator().manual_seed(0))
    assert torch.equal(out.z, again.z)
    model.eval()
    out = model(x)
    assert torch.equal(out.z, out.mu)


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
    clamp = Clamp(torch.tensor([0, 0, 0, 1, 1, 1]), blocks.dim_mask(fixed), 2)
    x = torch.rand(6, 3, 64, 64)
    out = model(x, torch.Generator().manual_seed(1), clamp)
    # group 0 fixes factor 0 (dims 0-3): identical codes there, equal to the mean of the encoder means
    assert torch.allclose(out.z[:3, :4], out.mu[:3, :4].mean(0).expand(3, 4), atol=1e-6)
    assert torch.allclose(out.z[3:, 4:8], out.mu[3:, 4:8].mean(0).expand(3, 4), atol=1e-6)
    # unclamped dims keep their own samples
    assert not torch.allclose(out.z[:3, 4:8], out.z[0, 4:8].expand(3, 4))
    assert not torch.allclose(out.z[:, 8:], out.mu[:, 8:])
    out.logits.sum().backward()  # gradients reach the encoder through the group mean
    assert model.encoder.head[-1].weight.grad.abs().sum() > 0
