"""eval.json documents as flat rows for tables and charts (the Metrics page draws them)."""
from __future__ import annotations

from core.config import ConfigError
from core.metrics.edits import mean_flip_rate
from core.metrics.registry import GROUND_TRUTH
from core.metrics.report import headline
from core.metrics.evaluate import load_eval
from core.runs.folder import Run, RunError

# The one number per metric that the comparison table and the scatter plots use, with a readable name.
SCORES = {
    "beta_vae": ("β-VAE score", "eval_accuracy"), "factor_vae": ("FactorVAE score", "eval_accuracy"),
    "mig": ("MIG", "mig"), "dci": ("DCI disentanglement", "disentanglement"), "sap": ("SAP", "sap"),
    "likelihood": ("IWAE (nats/image)", "iwae"), "reconstruction": ("reconstruction MSE/pixel", "mse_per_pixel"),
    "probes": ("mean probe AUC", "mean_auc"),
}
DISENTANGLEMENT = [SCORES[name][0] for name in GROUND_TRUTH]
FLIP_RATE = "mean flip rate at largest α"
# Headings short enough for a table of every score to fit a page (the full label is the heading's tooltip).
SHORT = {SCORES["beta_vae"][0]: "β-VAE", SCORES["factor_vae"][0]: "FactorVAE", SCORES["dci"][0]: "DCI",
         SCORES["likelihood"][0]: "IWAE", SCORES["reconstruction"][0]: "MSE", SCORES["probes"][0]: "probe AUC",
         FLIP_RATE: "flip rate"}
# Digits that mean something: IWAE is thousands of nats per image, MSE per pixel a few thousandths, the other
# scores are between 0 and 1, β is shown as typed.
FORMATS = {"β": "%g", SCORES["likelihood"][0]: "%.1f", SCORES["reconstruction"][0]: "%.4f"}
# The unit of a metric's headline number where the metric's name does not say it.
UNITS = {"likelihood": "nats/image"}


def score_rows(doc: dict) -> list[dict]:
    """One row per result of one eval.json: metric, headline score as text (its own digits and unit, e.g.
    "-7435.3 nats/image"; None when skipped or not finite), what it means, mode, seconds."""
    rows = []
    for name, r in doc["results"].items():
        if "skipped" in r:
            rows.append({"metric": name, "score": None, "details": f"skipped: {r['skipped']}", "mode": "",
                         "seconds": None})
            continue
        score, details = headline(name, r)
        if score != "-" and name in UNITS:
            score = f"{score} {UNITS[name]}"
        rows.append({"metric": name, "score": None if score == "-" else score, "details": details,
                     "mode": "fast" if r.get("fast") else "full", "seconds": r.get("seconds")})
    return rows


def score_format(column: str) -> str:
    """The printf-style format of a comparison_rows column's numbers (β, a score)."""
    return FORMATS.get(column, "%.3f")


def both(rows: list[dict], x: str, y: str) -> list[dict]:
    """The comparison_rows rows that have a number in both columns `x` and `y`: the points of a scatter of them."""
    return [row for row in rows if row.get(x) is not None and row.get(y) is not None]


def comparison_rows(runs: list[Run]) -> list[dict]:
    """One row per run that has an eval.json: its settings and each metric's headline number (None: not computed)."""
    rows = []
    for run in runs:
        doc = load_eval(run)
        if doc is None:
            continue
        try:
            beta = run.config.loss.beta
        except (ConfigError, RunError):  # a broken config.json still leaves its scores worth listing
            beta = None
        row = {"run": run.name, "model": doc.get("model"), "data set": doc.get("dataset"), "β": beta,
               "latent dims": doc.get("latent_dim"), "step": doc.get("step")}
        for name, (label, key) in SCORES.items():
            value = doc["results"].get(name, {}).get(key)
            row[label] = float(value) if isinstance(value, (int, float)) else None
        row[FLIP_RATE] = mean_flip_rate(doc["results"].get("edits", {}))
        rows.append(row)
    return rows


def probe_rows(doc: dict) -> list[dict]:
    """Per probed attribute: the probe's AUC on all dims and the best single dim's AUC."""
    rows = []
    for a in doc["results"].get("probes", {}).get("attributes", []):
        if "auc" in a:
            rows += [{"attribute": a["name"], "probe": "all dims (logistic regression)", "AUC": a["auc"]},
                     {"attribute": a["name"], "probe": "best single dim", "AUC": a["best_dim_auc"],
                      "dim": a["best_dim"]}]
    return rows


def edit_rows(doc: dict) -> list[dict]:
    """Per attribute, vector method and α: flip rate, dependency, pixel change and, where measured, identity change
    (long format for line charts)."""
    edits = doc["results"].get("edits", {})
    rows = []
    for a in edits.get("attributes", []):
        for v in a.get("vectors", []):
            for i, alpha in enumerate(edits["alphas"] if "flip_rate" in v else []):
                rows.append({"attribute": a["name"], "vector": v["method"], "α": alpha,
                             "flip rate": v["flip_rate"][i], "dependency": v["dependency"][i],
                             "pixel change": v["pixel_change"][i],
                             **({"identity change": v["identity_change"][i]} if "identity_change" in v else {})})
    return rows


def judge_rows(doc: dict) -> list[dict]:
    """Per edited attribute, how far to trust the judge: its held-out AUC on real images, its false-positive
    rate on originals, and how often it sees the attribute in reconstructions of faces that have it (the
    ceiling of the flip rate: a model that cannot draw the attribute never gets it judged present)."""
    return [{"attribute": a["name"], "judge AUC (real images)": a.get("judge_auc"),
             "judged present: originals without it": a.get("false_positive_rate_originals"),
             "judged present: reconstructions with it": a.get("positive_rate_reconstructions_with"),
             "faces edited": a.get("faces")}
            for a in doc["results"].get("edits", {}).get("attributes", [])]


def skipped_ground_truth(doc: dict) -> list[str]:
    """The disentanglement metrics that were skipped (a data set without ground-truth factors)."""
    return [name for name in GROUND_TRUTH if "skipped" in doc["results"].get(name, {})]
