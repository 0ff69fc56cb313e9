"""`python -m core verify RUN`: face verification ("same person or not?") from a run's latent codes, against an
end-to-end CNN baseline, written to RUN/verification.json.

Pairs come from held-out people only (core.metrics.verification_pairs), in person-disjoint folds, or from LFW's
official pairs.txt when it sits in the LFW folder. The latent means (core.explore.encode.load_or_encode, cached in
the run folder) are compared by every score of core.metrics.verification_scores, on all dims and, for ModVAE, on
its identity block (the clamped dims of the identity factors) and on the other dims. The baseline CNN
(core.metrics.identity_cnn) is compared the same way. In the background: core.metrics.verification_job; as
tables: core.metrics.verification_tables.
"""
from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import sklearn
import torch

from core.config import RunConfig
from core.data import DataError, Dataset, load_dataset
from core.device import pick_device
from core.explore.encode import load_or_encode
from core.fileio import json_safe, write_json
from core.metrics import identity_cnn
from core.metrics.verification_pairs import (Pairs, PeopleSplit, find_lfw_pairs, lfw_pairs, make_folds, person_ids,
                                             read_lfw_pairs, split_people)
from core.metrics.verification_scores import SCORES, fold_metrics, pair_scores
from core.models.family import FAMILIES
from core.models.modvae import FactorBlocks
from core.runs.folder import Run

FILE = "verification.json"
FORMAT = "latentlab-verification-1"
EXAMPLES = 6  # pairs per outcome (true/false accept/reject) kept for the dashboard


@dataclass(frozen=True)
class VerifySettings:
    """Sample counts and the baseline's budget; `fast()` is about a third of the work, for the dashboard."""

    folds: int = 10
    pairs: int = 300  # same-person pairs per fold, and as many different-person pairs (LFW's pairs.txt: its own)
    heldout_images: int = 5000  # encoded images per held-out split (val, test): a fixed random subset
    train_images: int = 10000  # encoded training-split images that fit the whitening and the learned comparison
    learned_pairs: int = 5000  # training pairs per class (same / different) of the learned comparison
    heldout_fraction: float = 0.2  # of the people, where the splits share people (SynthFaces)
    cnn_steps: int = identity_cnn.STEPS  # 0: no baseline
    cnn_batch: int = identity_cnn.BATCH

    @classmethod
    def fast(cls, **changes) -> VerifySettings:
        """Settings for --fast (tests, the dashboard): fewer images, pairs and baseline steps; noisier scores."""
        return replace(cls(heldout_images=2000, train_images=3000, learned_pairs=2000,
                           cnn_steps=identity_cnn.FAST_STEPS), **changes)


def unsupported(config: RunConfig) -> str | None:
    """Why runs of this config cannot be verified (their data set has no people), or None. Reads no images."""
    data = config.data
    if data.dataset == "dsprites":
        return "dSprites shows sprites, not people: it has no identities to verify"
    if data.dataset == "folder":
        return "an image folder has no identity labels"
    if data.dataset == "celeba" and data.root and Path(data.root).is_dir() and \
            not (Path(data.root).expanduser() / "identity_CelebA.txt").is_file():
        return f"its CelebA folder {data.root} has no identity_CelebA.txt"
    return None


def identity_blocks(config: RunConfig, dataset: Dataset, width: int | None = None) -> dict[str, list[int]]:
    """Latent dims to compare: all (`width` of them, default the config's latent size); for grouped families
    (ModVAE) also the identity block (the clamped dims of the identity factors: SynthFaces' IDENTITY_FACTORS, or the
    one identity block on real faces) and the other dims."""
    dims = list(range(config.arch.latent_dim if width is None else width))
    if not FAMILIES[config.model].grouped:
        return {"all": dims}
    size = config.modvae.dims_per_factor
    if dataset.is_ground_truth:
        blocks = FactorBlocks(dataset.num_factors, size, len(dims))
        factors = [dataset.factor_names.index(name) for name in getattr(dataset, "identity_factors", ())]
        identity = sorted(d for f in factors for d in dims[blocks.block(f)])
    else:
        identity = dims[FactorBlocks(1, size, len(dims)).block(0)]
    if not identity:
        return {"all": dims}
    return {"all": dims, "identity": identity, "other": [d for d in dims if d not in identity]}


def verify_run(run: Run, settings: VerifySettings | None = None, fast: bool = False, seed: int = 0,
               device: str = "auto", dataset: Dataset | None = None, cache_dir: str | Path | None = None,
               progress: Callable[[str], None] | None = None) -> dict:
    """Verify `run` and write RUN/verification.json (atomically); returns the document."""
    start = time.perf_counter()
    settings = settings or (VerifySettings.fast() if fast else VerifySettings())
    say = progress or (lambda message: None)
    config, step = run.config, run.checkpoint_step()
    if reason := unsupported(config):
        raise DataError(f"cannot verify {run.name!r}: {reason}")
    torch_device = pick_device(device)
    dataset = dataset if dataset is not None else load_dataset(config.data, progress=False)
    persons = person_ids(dataset)
    if persons is None:
        raise DataError(f"cannot verify {run.name!r}: {dataset.name} has no person identities")

    say("[1/4] encoding held-out faces ...")
    pairs_file = find_lfw_pairs(dataset)
    if pairs_file is not None:
        pairs, dropped = lfw_pairs(dataset, read_lfw_pairs(pairs_file))
        test_people = np.unique(persons[pairs.images])
        trained = np.unique(persons[dataset.indices("train")])
        people = PeopleSplit(np.setdiff1d(trained, test_people), test_people, f"LFW {pairs_file.name}",
                             encoder_saw_heldout=bool(np.isin(test_people, trained).any()))
        encoded = [load_or_encode(run, "all", None, dataset, str(torch_device))]
    else:
        dropped = 0
        people = split_people(persons, dataset.split, seed, settings.heldout_fraction)
        encoded = [load_or_encode(run, s, settings.heldout_images, dataset, str(torch_device)) for s in ("val", "test")]
    say("[2/4] pairs and training codes ...")
    index, mu = _merge(encoded)
    if pairs_file is None:
        keep = np.isin(persons[index], people.heldout_people)
        pairs = make_folds(index[keep], persons[index[keep]], settings.folds, settings.pairs, seed)
        train_enc = load_or_encode(run, "train", settings.train_images, dataset, str(torch_device))
        train_index, train_mu = train_enc["index"], train_enc["mu"]
    else:
        train_index, train_mu = index, mu
    keep = (dataset.split[train_index] == 0) & np.isin(persons[train_index], people.training_people)
    train_index, train_mu = _subset(train_index[keep], train_mu[keep], settings.train_images, seed)
    test_people = np.unique(persons[pairs.images])
    za, zb = mu[_rows(index, pairs.a)], mu[_rows(index, pairs.b)]

    say("[3/4] latent codes ...")
    results, kept_scores, seen = {"latent": {}}, {}, []
    for block, dims in identity_blocks(config, dataset, mu.shape[1]).items():
        scores, learned = pair_scores(za[:, dims], zb[:, dims], train_mu[:, dims], persons[train_index],
                                      settings.learned_pairs, seed)
        seen.append(learned.people_seen)
        results["latent"][block] = {"dims": dims, "scores": {s: fold_metrics(scores[s], pairs.same, pairs.fold,
                                                                              pairs.folds) for s in SCORES}}
        kept_scores[("latent", block)] = scores

    judge, cnn = None, None
    if settings.cnn_steps > 0:
        say("[4/4] baseline CNN ...")
        judge = identity_cnn.identity_judge(dataset, mu.shape[1], steps=settings.cnn_steps,
                                            batch_size=settings.cnn_batch, seed=seed, people=people,
                                            device=torch_device, cache_dir=cache_dir)
        embedded = judge.embed(dataset.images(pairs.images))
        ea, eb = embedded[_rows(pairs.images, pairs.a)], embedded[_rows(pairs.images, pairs.b)]
        scores, learned = pair_scores(ea, eb, judge.embed(dataset.images(train_index)), persons[train_index],
                                      settings.learned_pairs, seed)
        seen.append(learned.people_seen)
        results["cnn"] = {"all": {"dims": list(range(mu.shape[1])),
                                  "scores": {s: fold_metrics(scores[s], pairs.same, pairs.fold, pairs.folds)
                                             for s in SCORES}}}
        kept_scores[("cnn", "all")] = scores
        cnn = {**judge.info, "cached": judge.cached}
    seen = np.unique(np.concatenate(seen))
    if np.isin(seen, test_people).any():  # by construction impossible; a result that broke it must not be written
        raise RuntimeError("the learned comparison saw a test person: refusing to write verification.json")

    doc = {"format": FORMAT, "run": run.name, "model": config.model, "dataset": config.data.dataset,
           "latent_dim": config.arch.latent_dim, "beta": config.loss.beta, "step": step,
           "device": str(torch_device), "seed": seed, "fast": fast, "settings": asdict(settings),
           "protocol": {"pairs": "LFW pairs.txt (View 2)" if pairs_file else "generated", "pairs_file":
                        str(pairs_file) if pairs_file else None, "dropped_pairs": dropped, "folds": pairs.folds,
                        "per_fold": pairs.counts(), "people_split": people.how,
                        "description": people.describe() if pairs_file is None else
                        "LFW's official folds; the comparisons and the baseline never see a person of any pair",
                        "training_people": len(people.training_people), "test_people": len(test_people),
                        "encoder_saw_test_people": people.encoder_saw_heldout,
                        "training_images": len(train_index),
                        "learned_comparison_people": len(seen), "learned_comparison_saw_test_people": False},
           "results": results, "cnn": cnn,
           "examples": {f"{rep}/{block}": _examples(dataset, persons, pairs, results[rep][block], scores, judge, seed)
                        for (rep, block), scores in kept_scores.items() if block == "all"},
           "versions": {"scikit-learn": sklearn.__version__, "torch": torch.__version__, "numpy": np.__version__,
                        "python": platform.python_version()},
           "seconds": round(time.perf_counter() - start, 1), "updated": time.time()}
    write_json(run.path / FILE, json_safe(doc))
    return doc


def load_verification(run: Run) -> dict | None:
    """RUN/verification.json, or None when there is none or it is unreadable (derived data: recomputable)."""
    try:
        doc = json.loads((run.path / FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(doc.get("results"), dict) \
        else None


# --- helpers ---------------------------------------------------------------------------------------------------

def _merge(encodings: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    index = np.concatenate([e["index"] for e in encodings])
    mu = np.concatenate([e["mu"] for e in encodings])
    order = np.argsort(index, kind="stable")
    return index[order], mu[order]


def _rows(sorted_index: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions of `wanted` image indices in `sorted_index` (all must be there)."""
    pos = np.minimum(np.searchsorted(sorted_index, wanted), len(sorted_index) - 1)
    if not (sorted_index[pos] == wanted).all():
        raise RuntimeError("a pair names an image that was not encoded")
    return pos


def _subset(index: np.ndarray, mu: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if len(index) <= limit:
        return index, mu
    keep = np.sort(np.random.default_rng([seed, 23]).choice(len(index), limit, replace=False))
    return index[keep], mu[keep]


def _examples(dataset: Dataset, persons: np.ndarray, pairs: Pairs, result: dict, scores: dict,
              judge: identity_cnn.IdentityJudge | None, seed: int) -> dict:
    """Pairs per outcome under the best score (by mean AUC) at each fold's threshold: the most confident false
    accepts and false rejects (what the representation confuses) and random true ones."""
    best = max(SCORES, key=lambda s: result["scores"][s]["auc"])
    s = scores[best]
    threshold = np.array([f["threshold"] for f in result["scores"][best]["folds"]])[pairs.fold]
    accept, margin = s >= threshold, s - threshold
    rng = np.random.default_rng([seed, 29])
    chosen = {"false accept": np.flatnonzero(accept & ~pairs.same),
              "false reject": np.flatnonzero(~accept & pairs.same),
              "true accept": np.flatnonzero(accept & pairs.same),
              "true reject": np.flatnonzero(~accept & ~pairs.same)}
    chosen["false accept"] = chosen["false accept"][np.argsort(-margin[chosen["false accept"]])][:EXAMPLES]
    chosen["false reject"] = chosen["false reject"][np.argsort(margin[chosen["false reject"]])][:EXAMPLES]
    for key in ("true accept", "true reject"):
        chosen[key] = np.sort(rng.permutation(chosen[key])[:EXAMPLES])
    names = getattr(dataset, "identity_names", None)
    rows = []
    for outcome, picks in chosen.items():
        for i in picks.tolist():
            a, b = int(pairs.a[i]), int(pairs.b[i])
            pa, pb = int(persons[a]), int(persons[b])
            rows.append({"outcome": outcome, "a": a, "b": b, "person_a": names[pa] if names else pa,
                         "person_b": names[pb] if names else pb, "score": float(s[i]),
                         "threshold": float(threshold[i]), "fold": int(pairs.fold[i])})
    if judge is not None and rows:
        distance = identity_cnn.identity_distance(judge, dataset.images(np.array([r["a"] for r in rows])),
                                                  dataset.images(np.array([r["b"] for r in rows])))
        for row, d in zip(rows, distance.tolist()):
            row["identity_distance"] = d
    return {"score": best, "pairs": rows}

