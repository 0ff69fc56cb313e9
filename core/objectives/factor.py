"""FactorVAE (Kim & Mnih 2018): a discriminator tells codes z ~ q(z) from codes whose dims were permuted
independently across the batch (samples of prod_d q(z_d)); its logit difference estimates the total correlation,

    TC(z) = KL(q(z) || prod_d q(z_d)) ~ E_q(z)[log D(z) - log(1 - D(z))] = E[logit_0(z) - logit_1(z)],

which the VAE's loss adds times LossConfig.factor_gamma ("tc"). The discriminator trains alternately: after each
VAE step, one Adam step (lr factor_disc_lr, betas (0.5, 0.9) as in the paper) on the cross-entropy of the step's
codes against their permuted copy ("disc_loss"), as disentanglement_lib does, from the same batch. The paper's
discriminator is 6 hidden layers of 1000 units with LeakyReLU(0.2); width and depth are settings here, with a small
default for CPUs (4 x 256). Permutations come from the step's generator, so a resumed run repeats them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.models.vae import Output
from core.objectives.regulariser import REGULARISERS, Context, Regulariser, Term

BETAS = (0.5, 0.9)  # the discriminator's Adam betas (Kim & Mnih 2018, appendix)


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """`z` (B, D) with each dim shuffled across the batch by its own random permutation: a sample of prod_d q(z_d)."""
    order = torch.rand(z.shape, generator=generator, device=z.device).argsort(0)
    return z.gather(0, order)


class Discriminator(Term):
    """An MLP from a code to two logits, "from q(z)" (0) and "permuted" (1), with its own Adam."""

    def __init__(self, latent_dim: int, width: int, layers: int, lr: float):
        super().__init__()
        sizes = [latent_dim] + [width] * layers
        blocks = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))]
        self.net = nn.Sequential(*blocks, nn.Linear(sizes[-1], 2))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, betas=BETAS)

    def forward(self, out: Output, ctx: Context) -> dict[str, torch.Tensor]:
        """{"tc": the batch mean of logit_0 - logit_1 of the sampled codes}, differentiable w.r.t. the encoder."""
        logits = self.net(out.z)
        return {"tc": (logits[:, 0] - logits[:, 1]).mean()}

    def update(self, out: Output, ctx: Context) -> dict[str, torch.Tensor]:
        """One Adam step on the cross-entropy of the (detached) codes, class 0, and their permutation, class 1."""
        z = out.z.detach()
        logits = self.net(torch.cat([z, permute_dims(z, ctx.generator)]))
        labels = (torch.arange(2 * len(z), device=z.device) >= len(z)).long()  # 0: the codes, 1: permuted
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)  # also drops what the VAE's backward left on these weights
        loss.backward()
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # one discriminator for all ranks
            for p in self.net.parameters():
                torch.distributed.all_reduce(p.grad)
                p.grad /= torch.distributed.get_world_size()
        self.optimizer.step()
        return {"disc_loss": loss.detach()}


REGULARISERS.register("factor-discriminator", Regulariser(
    "factor-discriminator", "total correlation estimated by a discriminator of permuted codes, trained alternately",
    {"tc": "factor_gamma"},
    lambda loss, latent_dim, dataset_size: Discriminator(latent_dim, loss.factor_disc_width, loss.factor_disc_layers,
                                                         loss.factor_disc_lr),
    logged=("disc_loss",)))
