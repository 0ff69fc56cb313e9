"""Shrink a run folder for shipping or copying: weights only, optionally in half precision, last samples only.

The exported checkpoint loads everywhere a full one does (`Run.load_model` casts to float32); resuming it
starts a fresh Adam, since the optimizer state is gone (core.train says so when it happens).
"""
from __future__ import annotations

import re

import torch

from core.runs.folder import Run, RunError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SAMPLE = re.compile(r"^(recon|prior)_(\d+)\.png$")


def export_weights(run: Run, dtype: str = "fp16") -> int:
    """Rewrite RUN/checkpoint.safetensors in place as weights only, in `dtype`; returns its new size in bytes."""
    if dtype not in DTYPES:
        raise RunError(f"dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if run.status().get("state") == "running":
        raise RunError(f"run {run.name!r} is still training; export it once it has stopped")
    model = run.load_model("cpu")
    run.save_checkpoint(model, None, run.checkpoint_step(), dtype=DTYPES[dtype])
    return run.checkpoint_path.stat().st_size


def prune_samples(run: Run) -> list[str]:
    """Delete every sample PNG but the last step's reconstructions and prior samples; returns the names removed."""
    folder = run.folder("samples")  # a symbolic link in its place is refused: nothing outside the run is deleted
    found = [(m.group(1), int(m.group(2)), p) for p in folder.glob("*.png") if (m := SAMPLE.match(p.name))]
    last = {kind: max(step for k, step, _ in found if k == kind) for kind in {k for k, _, _ in found}}
    removed = []
    for kind, step, path in found:
        if step != last[kind]:
            path.unlink()
            removed.append(path.name)
    return sorted(removed)
