"""Every metric `python -m core evaluate` knows, by name: what it computes from a run (its section of eval.json),
its full settings and its fast ones."""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable

import numpy as np

from core.config import ConfigError
from core.data import DataError, Dataset
from core.explore.encode import checkpoint_digest, load_or_encode
from core.metrics.beta_vae import beta_vae_score
from core.metrics.codes import CachedRepresentation, encoder_means
from core.metrics.classifier import ClassifierSettings, Judge, load_or_train
from core.metrics.dci import dci_score
from core.metrics.edits import DEFAULT_ATTRIBUTES, edit_quality, parse_list, reconstructor
from core.metrics.factor_vae import factor_vae_score
from core.metrics.identity_cnn import FAST_STEPS as IDENTITY_FAST_STEPS
from core.metrics.identity_cnn import STEPS as IDENTITY_STEPS
from core.metrics.identity_cnn import identity_judge
from core.objectives.likelihoods import LIKELIHOOD_TERMS
from core.metrics.likelihood import likelihood, reconstruction_error
from core.metrics.mig import mig_score
from core.metrics.probes import attribute_probes, identity_disjoint
from core.metrics.verification_pairs import person_ids
from core.metrics.sap import sap_score
from core.models.vae import VAE
from core.runs.folder import Run


@dataclass
class Context:
    """What every metric section is computed from: the run, its loaded model and its data set."""

    run: Run
    model: VAE
    dataset: Dataset

    @cached_property
    def codes(self) -> CachedRepresentation:
        """Encoder means memoised per grid cell, shared by all the ground-truth metrics of one evaluation."""
        return CachedRepresentation(self.dataset, encoder_means(self.model))

    @property
    def kind(self) -> str:
        """The run's reconstruction term (a name in core.objectives.likelihoods), for the likelihood metrics."""
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
    if LIKELIHOOD_TERMS[ctx.kind].log_prob is None:
        return {"skipped": f"the run was trained with {ctx.kind!r}, which is not a likelihood: no ELBO or log p(x)"}
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
           classifier_test_images: int = 2000, hold: str = "Male", judge: str = "real+reconstructions",
           identity_steps: int = IDENTITY_STEPS) -> dict:
    chosen = parse_list(attributes)
    names = [str(n) for n in ctx.dataset.attributes.names]
    if not set(chosen) & set(names):
        return {"skipped": f"{ctx.dataset.name} has none of the attributes {', '.join(chosen)}; choose some with "
                           f"--set edits.attributes=A,B (it has: {', '.join(names) or 'none'})"}
    if judge not in ("real", "real+reconstructions"):
        raise ConfigError(f"edits.judge = {judge!r}: use real or real+reconstructions")
    with_reconstructions = judge == "real+reconstructions"
    weights = checkpoint_digest(ctx.run) if with_reconstructions else ""
    settings = ClassifierSettings.of(ctx.dataset, ctx.run.config.data.seed, classifier_steps, classifier_test_images,
                                     seed, reconstructions_of=weights)
    judge = load_or_train(ctx.dataset, settings, reconstruct=reconstructor(ctx.model) if with_reconstructions else None)
    device = str(next(ctx.model.parameters()).device)
    encodings = load_or_encode(ctx.run, "train", num_train, ctx.dataset, device)
    held = () if hold.strip().lower() in ("", "none") else tuple(parse_list(hold))
    # "still the same person?": the face verification baseline's CNN, where the data set knows who is who
    people = identity_steps > 0 and person_ids(ctx.dataset) is not None
    identity = identity_judge(ctx.dataset, steps=identity_steps, seed=seed) if people else None
    out = edit_quality(ctx.model, ctx.dataset, judge, encodings, chosen, parse_list(alphas, float), num_faces, seed,
                       held, identity)
    if identity is not None:
        out["identity"] = {"kind": identity.info["kind"], "calibration_auc": identity.info["calibration"]["auc"],
                           "cached": identity.cached}
    return {**out, "judge": {"trained_on": judge.trained_on, "aucs": judge.aucs, "cached": judge.cached,
                             **judge.scores}}


def attribute_judge(run: Run, dataset: Dataset, fast: bool = True, seed: int = 0) -> Judge:
    """The judge `python -m core evaluate RUN [--fast]` uses for `run`'s data set: read from its cache when an
    evaluation (of any run on that data set) trained it, trained now otherwise (the fast one: ~40 s on 2 cores)."""
    s = default_settings(fast)["edits"]
    return load_or_train(dataset, ClassifierSettings.of(dataset, run.config.data.seed, s["classifier_steps"],
                                                        s["classifier_test_images"], seed))


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
    "edits": {"num_faces": 64, "num_train": 2000, "classifier_steps": 150, "classifier_test_images": 500,
              "identity_steps": IDENTITY_FAST_STEPS},
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
