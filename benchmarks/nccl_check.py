"""NCCL smoke check under torchrun, for benchmarks/gpu_check.sh:

    torchrun --standalone --nproc_per_node=N benchmarks/nccl_check.py

Joins an NCCL process group (one GPU per process), all-reduces a tensor and takes one DistributedDataParallel step,
then prints what ran. The trainer joins a process group only when WORLD_SIZE > 1 (core/training/distributed.py),
so a 1-process `torchrun -m core train` never touches NCCL: this check does, whatever N is.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    if "LOCAL_RANK" not in os.environ:
        raise SystemExit("nccl_check.py: run it under torchrun (torchrun --standalone --nproc_per_node=1 ...)")
    if not torch.cuda.is_available():
        raise SystemExit("nccl_check.py: no CUDA GPU is visible; NCCL needs one")
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    x = torch.full((1024,), float(rank + 1), device="cuda")
    dist.all_reduce(x)
    expected = world * (world + 1) / 2
    assert torch.allclose(x, torch.full_like(x, expected)), (x[:4], expected)
    model = DistributedDataParallel(torch.nn.Linear(64, 64).cuda(), device_ids=[local])
    loss = model(torch.randn(32, 64, device="cuda")).square().mean()
    loss.backward()  # DDP all-reduces the gradients over NCCL here
    torch.cuda.synchronize()
    if rank == 0:
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
        print(f"NCCL ok: backend {dist.get_backend()}, world {world}, NCCL {nccl}, all_reduce sum {x[0].item():g} "
              f"(expected {expected:g}), one DDP step (loss {loss.item():.4f}) on {torch.cuda.get_device_name(local)}",
              flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
