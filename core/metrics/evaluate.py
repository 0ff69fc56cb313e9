"""`python -m core evaluate RUN`: every metric of a trained run, written to RUN/eval.json.

Each result is self-describing (its settings, seed, mode, seconds and checkpoint step), so evaluating a
subset of metrics later merges into the file; results of an older checkpoint are dropped.
"""
from __future__ import annotations

import functools
import inspect
import json
import platform
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable

import numpy as np
import sklearn
import torch

from core.config import ConfigError
from core.data import DataError, Dataset, load_dataset
from core.encode import load_or_encode
from core.fileio import write_json
from core.labels import DimLabel, dim_name
from core.metrics.beta_vae import beta_vae_score
from core.metrics.codes import CachedRepresentation, encoder_means
from core.metrics.classifier import ClassifierSettings, data_fingerprint, load_or_train
from core.metrics.dci import dci_score
from core.metrics.edits import DEFAULT_ATTRIBUTES, edit_quality, mean_flip_rate, parse_list
from core.metrics.factor_vae import factor_vae_score
from core.metrics.likelihood import likelihood, reconstruction_error
from core.metrics.mig import mig_score
from core.metrics.probes import attribute_probes, identity_disjoint
from core.metrics.sap import sap_score
from core.models.vae import VAE
from core.runs import Run
from core.train import pick_device

FILE = "eval.json"
FORMAT = "latentlab-eval-1"
NOT_INCLUDED = ("edit quality is judged by a small CNN trained here (see results.edits.judge for its held-out "
                "AUCs), not by a human or a state-of-the-art attribute model")


@dataclass
class Context:
    run: Run
    model: VAE
    dataset: Dataset

    @cached_property
    def codes(self) -> CachedRepresentation:
        """Encoder means memoised per grid cell, shared by all the ground-truth metrics of one evaluation."""
        return CachedRepresentation(self.dataset, encoder_means(self.model))

    @property
    def kind(self) -> str:
        return self.run.config.loss.reconstruction

    def held_out(self, n: int, seed: int) -> np.ndarray:
        """uint8 images of a seeded subset of the test split (a smaller subset is part of a larger one)."""
        index = self.dataset.indices("test")
        if len(index) == 0:
            raise DataError(f"{self.dataset.name}: the test split is empty; likelihood and reconstruction "
                            "need held-out images")
        chosen = np.random.default_rng(seed).permutation(index)[:n]
        return self.dataset.images(np.sort(chosen))


def _on_grid(metric: Callable) -> Callable:
    """A ground-truth metric as a section; its settings are the metric's keyword defaults (dlib's)."""
    @functools.wraps(metric)
    def section(ctx: Context, seed: int, **settings) -> dict:
        before = ctx.codes.cached
        out = metric(ctx.dataset, ctx.codes, seed=seed, **settings)
        return {**out, "images_encoded": ctx.codes.cached - before}
    return section


def _likelihood(ctx: Context, seed: int, num_images: int = 256, num_samples: int = 1000) -> dict:
    return likelihood(ctx.model, ctx.held_out(num_images, seed), ctx.kind, num_samples, seed)


def _reconstruction(ctx: Context, seed: int, num_images: int = 1000) -> dict:
    return reconstruction_error(ctx.model, ctx.held_out(num_images, seed), ctx.kind)


def _probes(ctx: Context, seed: int, num_train: int = 10_000, num_test: int = 5_000) -> dict:
    device = str(next(ctx.model.parameters()).device)
    train = load_or_encode(ctx.run, "train", num_train, ctx.dataset, device)
    test = load_or_encode(ctx.run, "test", num_test, ctx.dataset, device)
    keep = identity_disjoint(train.get("identities"), test.get("identities"))
    split = "by data split"
    if keep is not None:
        split = f"by identity ({int((~keep).sum())} held-out images of training identities dropped)"
        test = {k: (v[keep] if k in ("mu", "attributes") else v) for k, v in test.items()}
    out = attribute_probes(train["mu"], train["attributes"], test["mu"], test["attributes"],
                           [str(n) for n in train["attribute_names"]], seed)
    return {**out, "split": split}


def _edits(ctx: Context, seed: int, attributes: str = ",".join(DEFAULT_ATTRIBUTES), alphas: str = "0,0.5,1,1.5,2,3",
           num_faces: int = 200, num_train: int = 10_000, classifier_steps: int = 600,
           classifier_test_images: int = 2000) -> dict:
    chosen = parse_list(attributes)
    names = [str(n) for n in ctx.dataset.attributes.names]
    if not set(chosen) & set(names):
        return {"skipped": f"{ctx.dataset.name} has none of the attributes {', '.join(chosen)}; choose some with "
                           f"--set edits.attributes=A,B (it has: {', '.join(names) or 'none'})"}
    judge = load_or_train(ctx.run.path, ctx.dataset, ClassifierSettings(
        ctx.dataset.name, ctx.run.config.data.seed, data_fingerprint(ctx.dataset), tuple(names), classifier_steps, 64,
        classifier_test_images, seed))
    device = str(next(ctx.model.parameters()).device)
    encodings = load_or_encode(ctx.run, "train", num_train, ctx.dataset, device)
    out = edit_quality(ctx.model, ctx.dataset, judge, encodings, chosen, parse_list(alphas, float), num_faces, seed)
    return {**out, "judge": {"trained_on": judge.trained_on, "aucs": judge.aucs, "cached": judge.cached}}


GROUND_TRUTH = {"beta_vae": beta_vae_score, "factor_vae": factor_vae_score, "mig": mig_score,
                "dci": dci_score, "sap": sap_score}
SECTIONS: dict[str, Callable[..., dict]] = {
    **{name: _on_grid(fn) for name, fn in GROUND_TRUTH.items()},
    "likelihood": _likelihood, "reconstruction": _reconstruction, "probes": _probes,
    "edits": _edits,
}
METRICS = tuple(SECTIONS)

# Fast mode (tests, the dashboard): about a tenth of the points or fewer; noisy estimates, same definitions.
FAST = {
    "beta_vae": {"num_train": 200, "num_eval": 100},
    "factor_vae": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 1000},
    "mig": {"num_train": 1000},
    "dci": {"num_train": 1000, "num_test": 500, "num_trees": 20},
    "sap": {"num_train": 1000, "num_test": 500},
    "likelihood": {"num_images": 64, "num_samples": 100},
    "reconstruction": {"num_images": 256},
    "probes": {"num_train": 2000, "num_test": 1000},
    "edits": {"num_faces": 64, "num_train": 2000, "classifier_steps": 150, "classifier_test_images": 500},
}


def default_settings(fast: bool = False) -> dict[str, dict[str, Any]]:
    """Per metric, the keyword arguments it runs with: its defaults (full mode) or the FAST ones."""
    settings = {}
    for name, section in SECTIONS.items():
        params = inspect.signature(section).parameters.values()
        settings[name] = {p.name: p.default for p in params
                          if p.default is not inspect.Parameter.empty and p.name != "seed"}
        if fast:
            settings[name].update(FAST[name])
    return settings


def apply_overrides(settings: dict[str, dict[str, Any]], overrides: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Apply 'metric.setting=value' strings (e.g. 'dci.num_trees=10'), keeping each setting's type."""
    for item in overrides:
        key, _, value = item.partition("=")
        metric, _, name = key.partition(".")
        if metric not in settings or name not in settings[metric] or not value:
            known = ", ".join(f"{m}.{n}" for m, s in settings.items() for n in s)
            raise ConfigError(f"--set {item!r}: use METRIC.SETTING=VALUE with one of: {known}")
        kind = type(settings[metric][name])
        try:
            settings[metric][name] = kind(value)
        except ValueError:
            raise ConfigError(f"--set {item!r}: {name} takes a {kind.__name__}") from None
    return settings


def parse_metrics(text: str | None) -> list[str]:
    """'mig,dci' -> ['mig', 'dci']; None -> every metric."""
    if not text:
        return list(METRICS)
    names = [n.strip().replace("-", "_") for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise ConfigError(f"--metrics {text!r}: unknown {', '.join(unknown) or 'empty list'}; "
                          f"choose from {', '.join(METRICS)}")
    return names


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


def summary(doc: dict, labels: dict[int, DimLabel] | None = None) -> str:
    """A plain-text table of an eval.json document (the CLI prints it)."""
    labels = labels or {}
    lines = [f"{doc['run']}: {doc['model']} on {doc['dataset']}, {doc['latent_dim']} dims, step {doc['step']}",
             f"{'metric':15s} {'score':>9s}  {'details':58s} {'seconds':>8s}  mode"]
    for name, r in doc["results"].items():
        if "skipped" in r:
            lines.append(f"{name:15s} {'-':>9s}  skipped: {r['skipped']}")
            continue
        score, details = headline(name, r)
        lines.append(f"{name:15s} {score:>9s}  {details:58s} {r['seconds']:8.1f}  {'fast' if r['fast'] else 'full'}")
    probes = doc["results"].get("probes", {})
    if probes.get("attributes"):
        lines += ["", f"{'attribute':22s} {'AUC':>6s}  {'best single dim':30s} {'AUC':>6s}"]
        for a in probes["attributes"]:
            if "skipped" in a:
                lines.append(f"{a['name']:22s} {'-':>6s}  skipped: {a['skipped']}")
            else:
                best = ("+" if a["best_dim_sign"] > 0 else "-") + dim_name(a["best_dim"], labels)
                lines.append(f"{a['name']:22s} {a['auc']:6.3f}  {best:30s} {a['best_dim_auc']:6.3f}")
    edits = doc["results"].get("edits", {})
    if edits.get("attributes"):
        alphas = "  ".join(f"a={a:g}".rjust(6) for a in edits["alphas"])
        lines += ["", "edits: share of held-out faces without the attribute judged to have it after z + a*dZ",
                  f"{'attribute':14s} {'vector':12s} {'judge AUC':>9s}  {alphas}  {'pixel change at max a':>21s}"]
        for a in edits["attributes"]:
            auc = f"{a['judge_auc']:.3f}" if a.get("judge_auc") is not None else "-"
            for v in a.get("vectors", []):
                if "skipped" in v:
                    lines.append(f"{a['name']:14s} {v['method']:12s} {auc:>9s}  skipped: {v['skipped']}")
                else:
                    flips = "  ".join(f"{f:6.2f}" for f in v["flip_rate"])
                    lines.append(f"{a['name']:14s} {v['method']:12s} {auc:>9s}  {flips}  {v['pixel_change'][-1]:21.4f}")
            if "skipped" in a:
                lines.append(f"{a['name']:14s} skipped: {a['skipped']}")
    return "\n".join(lines)


def headline(name: str, r: dict) -> tuple[str, str]:
    if name in ("beta_vae", "factor_vae"):
        extra = f", {r['num_active_dims']} active dims" if name == "factor_vae" else ""
        return f"{r['eval_accuracy']:.3f}", f"eval accuracy (train {r['train_accuracy']:.3f}){extra}"
    if name == "mig":
        return f"{r['mig']:.3f}", "mean normalised top-2 MI gap"
    if name == "dci":
        return (f"{r['disentanglement']:.3f}", f"disentanglement (completeness {r['completeness']:.3f}, "
                f"accuracy {r['informativeness_train']:.2f}/{r['informativeness_test']:.2f})")
    if name == "sap":
        return f"{r['sap']:.3f}", "mean top-2 gap of 1-dim SVM accuracies"
    if name == "likelihood":
        bpd = f"{r['iwae_bits_per_dim']:.3f} bits/dim" if r["iwae_bits_per_dim"] is not None else "no bits/dim"
        return f"{r['iwae']:.1f}", f"IWAE nats/image (k={r['importance_samples']}); ELBO {r['elbo']:.1f}; {bpd}"
    if name == "reconstruction":
        bce = f", BCE {r['bce_per_pixel']:.4f}" if "bce_per_pixel" in r else ""
        return f"{r['mse_per_pixel']:.4f}", f"MSE per pixel{bce}"
    if name == "edits":
        flip = mean_flip_rate(r)
        return (f"{flip:.3f}" if flip is not None else "-"), (f"mean flip rate at a={r['alphas'][-1]:g} (mean vectors, "
                                                              f"{len(r['attributes'])} attributes)")
    mean = r["mean_auc"]
    return (f"{mean:.3f}" if mean is not None else "-"), f"mean probe ROC-AUC, {len(r['attributes'])} attributes"
