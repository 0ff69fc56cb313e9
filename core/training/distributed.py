"""Multi-process training under `torchrun` (PyTorch DistributedDataParallel), kept out of the training loop.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `init()` joins the process group (NCCL on CUDA, else gloo).
Every rank builds the same deterministic global batch of step t and trains on its contiguous slice, so the
union over ranks is the single-process batch and DDP's gradient average is the single-process gradient; the
sampling noise is sliced the same way (`rank_noise`). Only rank 0 touches the run folder. Without torchrun
every helper is a no-op (world of one, rank 0). ModVAE's clamp takes group means over each rank's rows, so
a rank's slice must hold whole groups: `check_batch_size` refuses a per-rank batch that is not a multiple of
--group-size, and `shard_batch` refuses a slice that would split a group.
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
    """Leave the process group together with the other ranks (barrier first); a no-op if not joined."""
    if dist.is_initialized():
        # Tear down together: a rank that destroys its group while a peer is still talking makes the peer's
        # gloo thread abort ("terminate called without an active exception", seen in CI at resume's end).
        try:
            dist.barrier()
        except RuntimeError:
            pass  # a peer already failed; nothing to wait for
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank: 0 .. world() - 1, 0 outside torchrun."""
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    """The number of processes training together, 1 outside torchrun."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0, the only process that writes the run folder."""
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


def check_batch_size(batch_size: int, group_size: int = 1) -> None:
    """The global batch splits evenly over the ranks, each rank's slice into whole groups of `group_size` rows
    (ModVAE; 1 for batches of independent rows)."""
    from core.runs.folder import RunError

    if batch_size % world():
        raise RunError(f"--batch-size {batch_size} does not split evenly over {world()} processes: "
                       f"use a multiple of {world()}")
    if (batch_size // world()) % group_size:
        raise RunError(f"--batch-size {batch_size} over {world()} processes gives each {batch_size // world()} "
                       f"images, which do not split into whole ModVAE groups of {group_size}: use a --batch-size "
                       f"that is a multiple of {world() * group_size}")


def shard_rows(batch_size: int) -> slice:
    """This rank's contiguous rows of a global batch."""
    n = batch_size // world()
    return slice(rank() * n, (rank() + 1) * n)


def shard_batch(batch: Batch) -> Batch:
    """This rank's contiguous rows of the global `batch` (itself in one process); RunError if they split a group."""
    if world() == 1:
        return batch
    rows = shard_rows(len(batch.index))
    g = batch.groups
    if g is not None and ((rows.start > 0 and g[rows.start - 1] == g[rows.start])
                          or (rows.stop < len(g) and g[rows.stop - 1] == g[rows.stop])):
        from core.runs.folder import RunError

        raise RunError(f"rank {rank()}'s rows {rows.start}..{rows.stop - 1} of the batch would split a ModVAE "
                       "group across processes: use a --batch-size that is a multiple of processes x --group-size")
    return replace(batch, index=batch.index[rows],
                   groups=None if batch.groups is None else batch.groups[rows],
                   fixed=None if batch.fixed is None else batch.fixed[rows])


def rank_noise(generator: torch.Generator, batch_size: int, latent_dim: int) -> torch.Tensor:
    """This rank's rows of the step's reparameterisation noise: the global (batch_size, latent_dim) fp32 draw,
    sliced like the batch, so every rank uses exactly its rows of the single-process noise, on CPU and CUDA
    alike (drawing the whole batch's noise costs a few kilobytes of random numbers)."""
    noise = torch.randn(batch_size, latent_dim, generator=generator, device=generator.device, dtype=torch.float32)
    return noise if world() == 1 else noise[shard_rows(batch_size)]


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


def any_rank(flag: bool) -> bool:
    """True on every rank if `flag` is set on any (e.g. SIGTERM reached only rank 0)."""
    if world() == 1:
        return flag
    # NCCL reduces CUDA tensors only (init() set this rank's GPU), gloo CPU ones
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    """Wait until every rank reaches this point; a no-op outside torchrun."""
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
