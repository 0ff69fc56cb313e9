"""`python -m core evaluate RUN`: every metric of a trained run, written to RUN/eval.json.

Each result is self-describing (its settings, seed, mode, seconds and checkpoint step), so evaluating a
subset of metrics later merges into the file; results of an older checkpoint are dropped.
"""
from __future__ import annotations

import logging
import platform
import time
from typing import Callable, Iterable

import numpy as np
import sklearn
import torch

from core.data import Dataset, load_dataset
from core.fileio import UntrustedFileError, json_safe, read_json, write_json
from core.schema import ANY, Bool, Int, ListOf, MapOf, Nullable, Num, Obj, OneOf, Str
from core.runs.folder import Run
from core.device import inference_layout, pick_device
from core.metrics.registry import Context, GROUND_TRUTH, METRICS, SECTIONS, apply_overrides, default_settings


FILE = "eval.json"


FORMAT = "latentlab-eval-1"


logger = logging.getLogger(__name__)


# --- eval.json's schema: what load_eval guarantees to its readers (core.metrics.tables, .report, the Metrics page) ---
MAX_EVAL_BYTES = 16 << 20
_N = Nullable(Num())  # a score; null where it was not finite (see _finite)
_COMMON = {"settings": MapOf(ANY), "seed": Int(), "fast": Bool(), "seconds": Num(0), "step": Int(0),
           "images_encoded": Int(0)}


def _result(fields: dict, required: tuple[str, ...] = (), rule=None) -> OneOf:
    """One metric's result: its numbers with the fields every result has, or skipped (with why, and nothing else a
    reader could mistake for numbers)."""
    skipped = Obj({**_COMMON, "skipped": Str()}, required=("skipped",), extra=None)
    return OneOf(Obj({**_COMMON, **fields}, required=required, rule=rule), skipped)


def _lengths_match(edits: dict) -> str | None:
    """Every edit vector has one flip rate, dependency and pixel change per α."""
    n = len(edits["alphas"])
    for a in edits["attributes"]:
        for v in a.get("vectors", []):
            if "flip_rate" in v and not len(v["flip_rate"]) == len(v["dependency"]) == len(v["pixel_change"]) == n:
                return f"the edit vectors of {a['name']!r} need one value per alpha ({n})"
    return None


# A row that was computed has every field its readers use; a skipped row has only what a skipped row holds.
_COUNTS = {"positives_train": Int(0), "positives_test": Int(0)}
_PROBE = OneOf(Obj({"name": Str(200), "auc": Num(0, 1), "best_dim": Int(0, 1 << 16), "best_dim_sign": Num(-1, 1),
                    "best_dim_auc": Num(0, 1), **_COUNTS},
                   required=("name", "auc", "best_dim", "best_dim_sign", "best_dim_auc")),
               Obj({"name": Str(200), "skipped": Str(), **_COUNTS}, required=("name", "skipped"), extra=None))
_METHOD = {"method": Str(100), "confounders": ListOf(Str(200)), "condition_on": ListOf(Str(200))}
_VECTOR = OneOf(Obj({**_METHOD, "flip_rate": ListOf(Num(0, 1)), "dependency": ListOf(_N),
                     "pixel_change": ListOf(Num(0)), "identity_change": ListOf(_N), "others_kept": ListOf(Num(0, 1))},
                    required=("method", "flip_rate", "dependency", "pixel_change")),
                Obj({**_METHOD, "skipped": Str()}, required=("method", "skipped"), extra=None))
_EDITED = {"name": Str(200), "faces": Int(0), "judge_auc": _N, "false_positive_rate_originals": _N,
           "positive_rate_reconstructions_with": _N, "judgeable": Bool()}
_ATTRIBUTE = OneOf(Obj({**_EDITED, "vectors": ListOf(_VECTOR)}, required=("name", "vectors")),
                   Obj({**_EDITED, "skipped": Str()}, required=("name", "skipped"), extra=None))
RESULTS = Obj({
    "beta_vae": _result({"eval_accuracy": _N, "train_accuracy": _N}, ("eval_accuracy", "train_accuracy")),
    "factor_vae": _result({"eval_accuracy": _N, "train_accuracy": _N, "num_active_dims": Int(0)},
                          ("eval_accuracy", "train_accuracy", "num_active_dims")),
    "mig": _result({"mig": _N}, ("mig",)),
    "dci": _result({k: _N for k in ("disentanglement", "completeness", "informativeness_train",
                                    "informativeness_test")},
                   ("disentanglement", "completeness", "informativeness_train", "informativeness_test")),
    "sap": _result({"sap": _N}, ("sap",)),
    "likelihood": _result({"iwae": _N, "elbo": _N, "importance_samples": Int(0), "iwae_bits_per_dim": _N},
                          ("iwae", "elbo", "importance_samples", "iwae_bits_per_dim")),
    "reconstruction": _result({"mse_per_pixel": _N, "bce_per_pixel": _N, "ssim": _N}, ("mse_per_pixel",)),
    "probes": _result({"mean_auc": _N, "attributes": ListOf(_PROBE)}, ("mean_auc", "attributes")),
    "edits": _result({"alphas": ListOf(Num(), min_items=1, max_items=1000), "attributes": ListOf(_ATTRIBUTE),
                      "judge": Obj({"trained_on": Str(1000), "aucs": MapOf(_N),
                                    **{k: MapOf(_N) for k in ("accuracy", "reconstruction_aucs",
                                                              "reconstruction_accuracy")}},
                                   required=("trained_on", "aucs"))},
                     ("alphas", "attributes", "judge"), rule=_lengths_match),
}, extra=Obj({**_COMMON, "skipped": Str()}), drop_invalid=True)
# (a metric added later is an object shown without a headline; a result that does not fit is left out: evaluating
# that metric again recomputes it)
EVAL = Obj({"format": Str(100, choices=(FORMAT,)), "run": Str(200), "model": Str(100), "dataset": Str(100),
            "latent_dim": Int(1, 1 << 16), "step": Int(0, 10**12), "device": Str(100), "versions": MapOf(Str(200)),
            "not_included": Str(), "results": RESULTS, "updated": Num()},
           required=("format", "run", "model", "dataset", "latent_dim", "step", "results"))


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
    model = inference_layout(run.load_model(pick_device(device)))
    step = run.checkpoint_step()
    ctx = Context(run, model, dataset if dataset is not None else load_dataset(config.data))
    doc = {"format": FORMAT, "run": run.name, "model": config.model, "dataset": config.data.dataset,
           "latent_dim": config.arch.latent_dim, "step": step, "device": str(next(model.parameters()).device),
           "versions": _versions(ctx.dataset), "not_included": NOT_INCLUDED, "results": _previous_results(run, step)}
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
        doc["results"][name] = json_safe(result)
        doc["updated"] = time.time()
        write_json(run.path / FILE, doc)
    return doc


def load_eval(run: Run) -> dict | None:
    """RUN/eval.json checked against EVAL (core.fileio: size, depth, finite numbers, types), or None when there is
    none, or when it does not fit: it is derived data, so a warning names the file and the problem, and evaluating
    again rewrites it."""
    try:
        return read_json(run.path / FILE, EVAL, max_bytes=MAX_EVAL_BYTES, missing=None,
                         fix=f"evaluate the run again to rewrite it (python -m core evaluate {run.name})")
    except UntrustedFileError as e:
        logger.warning("%s", e)
        return None


def _previous_results(run: Run, step: int) -> dict:
    doc = load_eval(run)
    return doc["results"] if doc and doc.get("step") == step and isinstance(doc.get("results"), dict) else {}


def _versions(dataset: Dataset) -> dict[str, str]:
    versions = {"scikit-learn": sklearn.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    return {**versions, dataset.name: dataset.version} if dataset.version else versions

