"""A run's checkpoint.safetensors as tensors: saving weights and Adam state, loading them back with checks. The torch
half of core.runs.folder.Run, imported on use."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file
from torch import nn

from core.fileio import atomic_path
from core.models.vae import VAE
from core.runs.folder import FORMAT, Run, RunError


def save(run: Run, model: VAE, optimizer: torch.optim.Optimizer | None, step: int, dtype: torch.dtype | None,
         extra: Mapping[str, nn.Module] | None, extra_optimizers: Mapping[str, torch.optim.Optimizer] | None) -> None:
    """Run.save_checkpoint."""
    tensors = {f"model.{k}": _cpu(v, dtype) for k, v in model.state_dict().items()}
    if optimizer is not None:
        tensors.update(_flatten_optimizer(optimizer))
    for name, module in (extra or {}).items():
        tensors.update({f"reg.{name}.{k}": _cpu(v, None) for k, v in module.state_dict().items()})
    for name, extra_optimizer in (extra_optimizers or {}).items():
        tensors.update(_flatten_optimizer(extra_optimizer, f"regoptim.{name}."))
    with atomic_path(run.checkpoint_path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "step": str(step)})


def load_model(run: Run, device: str | torch.device) -> VAE:
    """Run.load_model."""
    config = run.config
    model = config.family.build(config.arch)
    with run._open() as f:
        state = {k[len("model."):]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
    model.load_state_dict(check_state(model, state, run.checkpoint_path))
    return model.to(device).eval()


def load_optimizer(run: Run, optimizer: torch.optim.Optimizer) -> None:
    """Run.load_optimizer."""
    with run._open() as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith("optim.")}
    _unflatten_optimizer(optimizer, tensors)


def load_extra(run: Run, modules: Mapping[str, nn.Module],
               optimizers: Mapping[str, torch.optim.Optimizer] | None) -> list[str]:
    """Run.load_extra."""
    with run._open() as f:
        keys = list(f.keys())
        missing = []
        for name, module in modules.items():
            prefix = f"reg.{name}."
            state = {k[len(prefix):]: f.get_tensor(k) for k in keys if k.startswith(prefix)}
            if not state:
                missing += [name] if module.state_dict() else []
                continue
            module.load_state_dict(check_state(module, state, run.checkpoint_path))
        for name, optimizer in (optimizers or {}).items():
            if name in missing:
                continue
            prefix = f"regoptim.{name}."
            _unflatten_optimizer(optimizer, {k: f.get_tensor(k) for k in keys if k.startswith(prefix)}, prefix)
    return missing


def check_state(model: VAE, state: dict[str, Any], source: Path) -> dict[str, torch.Tensor]:
    """`state` as float32 tensors if it fits `model` exactly; otherwise a RunError naming `source` and the problem."""
    expected = model.state_dict()
    missing, extra = expected.keys() - state.keys(), state.keys() - expected.keys()
    if missing or extra:
        raise RunError(f"{source}: weights do not match config.json "
                       f"(missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]})")
    for k, ref in expected.items():
        t = state[k]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise RunError(f"{source}: {k} is not a floating-point tensor")
        if t.shape != ref.shape:
            raise RunError(f"{source}: {k} has shape {tuple(t.shape)}, config.json implies {tuple(ref.shape)}")
    return {k: v.float() for k, v in state.items()}


def _cpu(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    t = t.detach().to("cpu")
    return (t.to(dtype) if dtype is not None and t.is_floating_point() else t).contiguous()


def _flatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str = "optim.") -> dict[str, torch.Tensor]:
    """Adam-style state as flat tensors: <prefix><param index>.<name>; hyper-parameters stay in config."""
    out = {}
    for i, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            out[f"{prefix}{i}.{name}"] = _cpu(torch.as_tensor(value), None)
    return out


def _unflatten_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         prefix: str = "optim.") -> None:
    sd = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        i, name = key[len(prefix):].split(".", 1)
        state.setdefault(int(i), {})[name] = value
    sd["state"] = state
    optimizer.load_state_dict(sd)
