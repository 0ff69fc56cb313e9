"""Multi-process training under `torchrun` (PyTorch DistributedDataParallel), kept out of the training loop.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `init()` joins the process group (NCCL on CUDA, else gloo).
Every rank builds the same deterministic global batch of step t and trains on its contiguous slice, so the
union over ranks is the single-process batch and DDP's gradient average is the single-process gradient.
Only rank 0 touches the run folder. Without torchrun every helper is a no-op (world of one, rank 0).
ModVAE's clamp takes group means over each rank's rows only, so a group split across ranks (identity batches,
or a per-rank batch that is not a multiple of --group-size) makes its loss differ slightly from one process.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from core.training.batches import Batch

T = TypeVar("T")


def launched() -> bool:
    """True in a process started by torchrun (or any launcher setting WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto") -> None:
    """Join the torchrun process group; a no-op outside torchrun or if already joined."""
    if not launched() or dist.is_initialized():
        return
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")


def shutdown() -> None:
    if dist.is_initialized():
        # Tear down together: a rank that destroys its group while a peer is still talking makes the peer's
        # gloo thread abort ("terminate called without an active exception", seen in CI at resume's end).
        try:
            dist.barrier()
        except RuntimeError:
            pass  # a peer already failed; nothing to wait for
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Each torchrun worker on a CUDA machine uses its own GPU (LOCAL_RANK)."""
    if device.type == "cuda" and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` in DDP when distributed (the same Parameters, so one optimizer serves both), else itself."""
    if not dist.is_initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def check_batch_size(batch_size: int) -> None:
    if batch_size % world():
        from core.runs.folder import RunError

        raise RunError(f"--batch-size {batch_size} does not split evenly over {world()} processes: "
                       f"use a multiple of {world()}")


def shard_rows(batch_size: int) -> slice:
    """This rank's contiguous rows of a global batch."""
    n = batch_size // world()
    return slice(rank() * n, (rank() + 1) * n)


def shard_batch(batch: Batch) -> Batch:
    if world() == 1:
        return batch
    rows = shard_rows(len(batch.index))
    return replace(batch, index=batch.index[rows],
                   groups=None if batch.groups is None else batch.groups[rows],
                   fixed=None if batch.fixed is None else batch.fixed[rows])


def skip_noise(generator: torch.Generator, batch_size: int, latent_dim: int) -> None:
    """Draw and drop the reparameterisation noise of the lower ranks' rows, so this rank's draw is its rows of
    the single-process noise. Exact on CPU when rows x latent_dim is a multiple of 16 (PyTorch fills normals
    in blocks of 16); on CUDA the ranks' noise is merely independent."""
    before = shard_rows(batch_size).start
    if before:
        torch.randn(before, latent_dim, generator=generator, device=generator.device)


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average every tensor over the ranks (one all-reduce per key; called only at logging intervals)."""
    if world() == 1:
        return values
    out = {}
    for k, v in values.items():
        v = v.detach().clone()
        dist.all_reduce(v)
        out[k] = v / world()
    return out


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is set on any (e.g. SIGTERM reached only rank 0)."""
    if world() == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def on_main(make: Callable[[], T], share: Callable[[T], Any], rebuild: Callable[[Any], T]) -> T:
    """Run `make` on rank 0 only and hand the result to the other ranks as `rebuild(share(result))`.
    An error on rank 0 is raised on every rank (as RunError), so no rank waits forever."""
    if world() == 1:
        return make()
    from core.runs.folder import RunError

    box: list[Any] = [None, None]
    if is_main():
        try:
            result = make()
            box[0] = share(result)
        except Exception as e:
            box[1] = str(e)
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    if box[1] is not None:
        raise RunError(f"rank 0 failed: {box[1]}")
    return result if is_main() else rebuild(box[0])
