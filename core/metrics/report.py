"""eval.json as text: the CLI's summary table and one headline number per metric."""
from __future__ import annotations

from core.runs.labels import DimLabel, dim_name
from core.metrics.edits import mean_flip_rate


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
        mode = "fast" if r.get("fast") else "full"
        lines.append(f"{name:15s} {score:>9s}  {details:58s} {_f(r.get('seconds'), '8.1f'):>8s}  {mode}")
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
                  f"{'attribute':14s} {'vector':12s} {'judge AUC':>9s}  {alphas}  {'pixel change at max a':>21s}"
                  f"  {'others kept':>11s}"]
        for a in edits["attributes"]:
            auc = f"{a['judge_auc']:.3f}" if a.get("judge_auc") is not None else "-"
            for v in a.get("vectors", []):
                if "skipped" in v:
                    lines.append(f"{a['name']:14s} {v['method']:12s} {auc:>9s}  skipped: {v['skipped']}")
                else:
                    flips = "  ".join(f"{f:6.2f}" for f in v["flip_rate"])
                    kept = f"{v['others_kept'][-1]:11.2f}" if v.get("others_kept") else f"{'-':>11s}"
                    lines.append(f"{a['name']:14s} {v['method']:12s} {auc:>9s}  {flips}  {v['pixel_change'][-1]:21.4f}"
                                 f"  {kept}")
            if "skipped" in a:
                lines.append(f"{a['name']:14s} skipped: {a['skipped']}")
        judge = edits.get("judge", {})
        lines.append(f"judge: trained on the {judge.get('trained_on', '?')}")
        for key, label in (("accuracy", "accuracy on held-out faces"),
                           ("reconstruction_accuracy", "accuracy on this run's reconstructions of them")):
            if judge.get(key):
                shown = ", ".join(f"{n} {judge[key][n]:.3f}" for n in (a["name"] for a in edits["attributes"])
                                  if judge[key].get(n) is not None)
                lines.append(f"judge {label}: {shown}")
    return "\n".join(lines)


def headline(name: str, r: dict) -> tuple[str, str]:
    """(score, details) as text for one metric's result: its headline number and a short note on what it is. A
    number that was not finite (null in eval.json) shows as "-", a metric this version does not know as "-"."""
    if name in ("beta_vae", "factor_vae"):
        # Not "active dims": that is the KL definition (core.explore.traverse.collapsed, the Traversals page); the
        # FactorVAE score keeps the dims whose code std reaches its prune threshold (disentanglement_lib's rule).
        extra = (f", votes over {r['num_active_dims']} dims (code std ≥ its prune threshold)"
                 if name == "factor_vae" else "")
        return _f(r["eval_accuracy"], ".3f"), f"eval accuracy (train {_f(r['train_accuracy'], '.3f')}){extra}"
    if name == "mig":
        return _f(r["mig"], ".3f"), "mean normalised top-2 MI gap"
    if name == "dci":
        return (_f(r["disentanglement"], ".3f"), f"disentanglement (completeness {_f(r['completeness'], '.3f')}, "
                f"accuracy {_f(r['informativeness_train'], '.2f')}/{_f(r['informativeness_test'], '.2f')})")
    if name == "sap":
        return _f(r["sap"], ".3f"), "mean top-2 gap of 1-dim SVM accuracies"
    if name == "likelihood":
        bpd = f"{r['iwae_bits_per_dim']:.3f} bits/dim" if r["iwae_bits_per_dim"] is not None else "no bits/dim"
        return _f(r["iwae"], ".1f"), f"IWAE nats/image (k={r['importance_samples']}); ELBO {_f(r['elbo'], '.1f')}; {bpd}"
    if name == "reconstruction":
        bce = f", BCE {_f(r['bce_per_pixel'], '.4f')}" if "bce_per_pixel" in r else ""
        similarity = f", SSIM {_f(r['ssim'], '.3f')}" if "ssim" in r else ""
        return _f(r["mse_per_pixel"], ".4f"), f"MSE per pixel{bce}{similarity}"
    if name == "edits":
        flip = mean_flip_rate(r)
        return (f"{flip:.3f}" if flip is not None else "-"), (f"mean flip rate at a={r['alphas'][-1]:g} (mean vectors, "
                                                              f"{len(r['attributes'])} attributes)")
    if name == "probes":
        return _f(r["mean_auc"], ".3f"), f"mean probe ROC-AUC, {len(r['attributes'])} attributes"
    return "-", "a metric this version of LatentLab does not know"


def _f(value, spec: str) -> str:
    """`value` formatted with `spec`, or "-" for None (a score that was not finite)."""
    return "-" if value is None else format(value, spec)
