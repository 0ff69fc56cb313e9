"""verification.json documents as text and as flat rows for tables and charts (the Verification page draws them)."""
from __future__ import annotations

import numpy as np

from core.config import ConfigError
from core.metrics.verification import load_verification, unsupported
from core.metrics.verification_scores import SCORES
from core.runs.folder import Run, RunError

REPRESENTATIONS = {"latent": "latent codes", "cnn": "E2E CNN"}
SCORE_LABELS = {"cosine": "cosine", "euclidean": "Euclidean", "cosine_whitened": "cosine, whitened",
                "euclidean_whitened": "Euclidean, whitened", "learned": "learned (|z1−z2|, z1⊙z2)"}


def result_rows(doc: dict) -> list[dict]:
    """One row per (representation, block of dims, score): AUC, accuracy and TAR at FAR = 1 %, mean ± std over
    the folds."""
    rows = []
    for rep, blocks in doc["results"].items():
        for block, result in blocks.items():
            for score in SCORES:
                r = result["scores"].get(score)
                if r is None:
                    continue
                rows.append({"run": doc["run"], "representation": REPRESENTATIONS.get(rep, rep), "dims": block,
                             "n dims": len(result["dims"]), "score": SCORE_LABELS[score],
                             "AUC": r["auc"], "AUC std": r["auc_std"], "accuracy": r["accuracy"],
                             "accuracy std": r["accuracy_std"], "TAR@FAR=1%": r["tar_at_far"],
                             "TAR std": r["tar_at_far_std"]})
    return rows


def best_rows(docs: list[dict]) -> list[dict]:
    """Per run and (representation, dims): the score with the best mean AUC, for the comparison of runs."""
    rows = []
    for doc in docs:
        best: dict[tuple, dict] = {}
        for row in result_rows(doc):
            key = (row["representation"], row["dims"])
            if key not in best or row["AUC"] > best[key]["AUC"]:
                best[key] = row
        for row in best.values():
            rows.append({"model": doc["model"], "β": doc.get("beta"), "latent dims": doc["latent_dim"],
                         "data set": doc["dataset"], "step": doc["step"], **row})
    return rows


def roc_rows(docs: list[dict], score: str, blocks: tuple[str, ...] = ("all", "identity", "other")) -> list[dict]:
    """Long-format mean ROC curves (FAR, TAR, curve name) of `score` for every run's latent blocks and baseline."""
    rows = []
    for doc in docs:
        for rep, results in doc["results"].items():
            for block, result in results.items():
                r = result["scores"].get(score)
                if r is None or block not in blocks:
                    continue
                name = f"{doc['run']} · {REPRESENTATIONS.get(rep, rep)}"
                name += f" · {block} dims" if rep == "latent" else ""
                name += f" (AUC {r['auc']:.3f})"
                rows += [{"curve": name, "FAR": far, "TAR": tar} for far, tar in zip(r["roc"]["far"], r["roc"]["tar"])]
    return rows


def example_rows(doc: dict, key: str) -> list[dict]:
    """The example pairs of one representation ('latent/all', 'cnn/all'), as stored."""
    return list(doc.get("examples", {}).get(key, {}).get("pairs", []))


def verifiable_runs(runs: list[Run]) -> tuple[list[Run], list[tuple[str, str]]]:
    """Runs the Verification page offers (a checkpoint and a data set with people, or a verification.json), and
    (name, why not) for the others."""
    offered, refused = [], []
    for run in runs:
        if load_verification(run) is not None:
            offered.append(run)
            continue
        if not run.checkpoint_path.is_file():
            refused.append((run.name, "no checkpoint yet"))
            continue
        try:
            reason = unsupported(run.config)
        except (ConfigError, RunError, OSError) as e:
            reason = f"its config cannot be read ({e})"
        if reason:
            refused.append((run.name, reason))
        else:
            offered.append(run)
    return offered, refused


def summary(doc: dict) -> str:
    """A plain-text table of a verification.json for the terminal."""
    p = doc["protocol"]
    lines = [f"{doc['run']}: {doc['model']} on {doc['dataset']}, {doc['latent_dim']} dims, step {doc['step']}; "
             f"{p['pairs']} pairs, {p['folds']} folds, {p['test_people']} test people "
             f"({p['people_split']}; encoder saw test people: {p['encoder_saw_test_people']})",
             f"{'representation':15s} {'dims':9s} {'score':28s} {'AUC':>13s} {'accuracy':>13s} {'TAR@FAR=1%':>13s}"]
    for r in result_rows(doc):
        lines.append(f"{r['representation']:15s} {r['dims'] + ' (' + str(r['n dims']) + ')':9s} {r['score']:28s} "
                     f"{r['AUC']:.3f} ± {r['AUC std']:.3f} {r['accuracy']:.3f} ± {r['accuracy std']:.3f} "
                     f"{r['TAR@FAR=1%']:.3f} ± {r['TAR std']:.3f}")
    return "\n".join(lines)


def pair_image_index(rows: list[dict]):
    """Data set indices of example pairs, interleaved a0, b0, a1, b1, ... (a grid with an even number of columns
    shows one pair per two cells)."""
    return np.array([i for r in rows for i in (r["a"], r["b"])], dtype=np.int64)
