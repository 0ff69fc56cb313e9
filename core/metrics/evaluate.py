"""`python -m core evaluate RUN`: every metric of a trained run, written to RUN/eval.json.

Each result is self-describing (its settings, seed, mode, seconds and checkpoint step), so evaluating a
subset of metrics later merges into the file; results of an older checkpoint are dropped.
"""
from __future__ import annotations

import json
import platform
import time
from typing import Callable, Iterable

import numpy as np
import sklearn
import torch

from core.data import Dataset, load_dataset
from core.fileio import write_json
from core.runs.folder import Run
from core.device import pick_device
from core.metrics.registry import Context, GROUND_TRUTH, METRICS, SECTIONS, apply_overrides, default_settings


FILE = "eval.json"


FORMAT = "latentlab-eval-1"


NOT_INCLUDED = ("edit quality is judged by a small CNN trained here (see results.edits.judge for its held-out "
                "AUCs), not by a human or a state-of-the-art attribute model")


def evaluate_run(run: Run, metrics: Iterable[str] | None = None, fast: bool = False, seed: int = 0,
                 device: str = "auto", overrides: Iterable[str] = (), dataset: Dataset | None = None,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Compute the metrics and merge each, as it finishes, into RUN/eval.json (atomically, so an error or
    Ctrl-C later on keeps the finished ones); returns the whole document."""
    names = list(metrics) if metrics is not None else list(METRICS)
    settings = apply_overrides(default_settings(fast), overrides)
    config = run.config
    model = run.load_model(pick_device(device))
    step = run.checkpoint_step()
    ctx = Context(run, model, dataset if dataset is not None else load_dataset(config.data))
    doc = {"format": FORMAT, "run": run.name, "model": config.model, "dataset": config.data.dataset,
           "latent_dim": config.arch.latent_dim, "step": step, "device": str(next(model.parameters()).device),
           "versions": _versions(), "not_included": NOT_INCLUDED, "results": _previous_results(run, step)}
    for i, name in enumerate(names, 1):
        if name in GROUND_TRUTH and not ctx.dataset.is_ground_truth:
            result = {"skipped": f"{ctx.dataset.name} has no ground-truth factors; disentanglement metrics need "
                                 "a factor data set (synthfaces, dsprites)", "step": step}
        else:
            if progress:
                progress(f"[{i}/{len(names)}] {name} ...")
            start = time.perf_counter()
            out = SECTIONS[name](ctx, seed, **settings[name])
            result = {**out, "settings": settings[name], "seed": seed, "fast": fast,
                      "seconds": round(time.perf_counter() - start, 2), "step": step}
        doc["results"].pop(name, None)  # re-insert: the file lists results in the order they were computed
        doc["results"][name] = _finite(result)
        doc["updated"] = time.time()
        write_json(run.path / FILE, doc)
    return doc


def load_eval(run: Run) -> dict | None:
    """RUN/eval.json, or None when there is none (or it is unreadable: it is derived data, recomputable)."""
    try:
        doc = json.loads((run.path / FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == FORMAT else None


def _previous_results(run: Run, step: int) -> dict:
    doc = load_eval(run)
    return doc["results"] if doc and doc.get("step") == step and isinstance(doc.get("results"), dict) else {}


def _versions() -> dict[str, str]:
    return {"scikit-learn": sklearn.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _finite(obj):
    """JSON has no NaN/inf: non-finite floats become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
