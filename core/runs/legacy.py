"""Import weights from a legacy PyTorch file (.pt / .pth) into a new run folder.

The file is read with `torch.load(weights_only=True)`: tensors and plain containers only, so a pickle
that would run code on load is refused instead of executed. The result is saved as safetensors.
"""
from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import torch

from core.runs.checkpoint import check_state
from core.runs.folder import Run, RunError, create_run

PREFIXES = ("module.", "model.")  # DataParallel / DDP wrappers and our own checkpoint prefix


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Name -> tensor of a .pt/.pth state dict, wrapper prefixes stripped; RunError unless it loads weights-only."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunError(f"{path}: refused: not a plain tensor file ({first}). Only weights are imported; "
                       "files that need code to load are never executed") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise RunError(f"{path}: expected a state dict (names -> tensors), found {type(obj).__name__}")
    return {_strip(k): v for k, v in obj.items()}


def _strip(key: str) -> str:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def import_weights(path: str | Path, like: Run, name: str, runs_dir: Path | None = None) -> Run:
    """A new run `name` with `like`'s config and the weights of the legacy file `path`."""
    config = like.config
    model = config.family.build(config.arch)
    state = check_state(model, read_state_dict(path), Path(path))  # refuse before creating anything
    config = replace(config, name=name, command=f"imported from {Path(path).name} with the config of {like.name}")
    run = create_run(config, runs_dir or like.path.parent)
    model.load_state_dict(state)
    run.save_checkpoint(model, None, 0)
    run.write_status("finished", step=0, total_steps=config.train.steps, imported_from=str(path))
    return run
