"""The other commands: list runs and model families, preview a data set, import and export weights, evaluate and
verify a run."""
from __future__ import annotations

import sys
from pathlib import Path

from core.config import all_settings
from core.device import reuse_freed_memory
from core.models.family import FAMILIES
from core.runs.folder import find_run
from core.runs.summary import summaries


def cmd_runs(a, argv, runs_dir: Path) -> int:
    """`runs`: one line per run folder with its model, beta, data set, state and step; a broken folder is listed
    with its problem and never hides the others."""
    rows = summaries(runs_dir)
    if not rows:
        print(f"no runs in {runs_dir}")
    for r in rows:
        if r.model is None:
            print(f"{r.name:40s} BROKEN: {r.problem}")
            continue
        print(f"{r.name:40s} {r.model:9s} beta={r.beta:<5g} {r.dataset:11s} {r.state:10s} "
              f"step {r.step}/{r.total_steps}" + (f"  ({r.problem})" if r.problem else ""))
    return 0


def cmd_preview(a, argv, runs_dir: Path) -> int:
    """`preview`: save a PNG grid of a data set's images (factor sweeps first for ground-truth data)."""
    from core.data.preview import preview

    print(f"wrote {preview(a.dataset, Path(a.out), a.data_root)}")
    return 0


def cmd_import_weights(a, argv, runs_dir: Path) -> int:
    """`import-weights`: a legacy .pt/.pth state dict as a new run with the config of `--like`."""
    from core.runs.legacy import import_weights

    like = find_run(runs_dir, a.like)
    print(f"imported into {import_weights(a.file, like, a.name, runs_dir).path}")
    return 0


def cmd_export(a, argv, runs_dir: Path) -> int:
    """`export`: rewrite a run's checkpoint as weights only in `--dtype`, optionally pruning old sample PNGs."""
    from core.runs.export import export_weights, prune_samples

    run = find_run(runs_dir, a.run)
    size = export_weights(run, a.dtype)
    print(f"wrote {run.checkpoint_path} ({a.dtype}, weights only, {size / 1e6:.1f} MB)")
    if a.prune_samples:
        print(f"removed {len(prune_samples(run))} older sample PNGs")
    return 0


def cmd_evaluate(a, argv, runs_dir: Path) -> int:
    """`evaluate`: compute the chosen metrics into RUN/eval.json and print their summary table."""
    from core.metrics.evaluate import FILE, evaluate_run
    from core.metrics.registry import apply_overrides, default_settings, parse_metrics
    from core.metrics.report import summary
    from core.runs.labels import LabelError, load_labels
    from core.training.threads import ThreadGovernor

    metrics = parse_metrics(a.metrics)
    apply_overrides(default_settings(a.fast), a.set)  # a wrong metric or setting is named before the run is looked up
    run = find_run(runs_dir, a.run)
    # As many CPU threads as there are idle cores: on a loaded 2-core machine two threads of the attribute judge's
    # training took 6x the CPU time of one, most of it spinning.
    threads = ThreadGovernor()
    reuse_freed_memory()

    def progress(message: str) -> None:
        threads.recheck()
        print(message, flush=True)

    doc = evaluate_run(run, metrics, fast=a.fast, seed=a.seed, device=a.device, overrides=a.set, progress=progress)
    try:
        labels = load_labels(run)
    except LabelError as e:
        print(f"warning: {e}; dims are shown unlabelled", file=sys.stderr)
        labels = {}
    print(summary(doc, labels))
    print(f"wrote {run.path / FILE}")
    return 0


def cmd_verify(a, argv, runs_dir: Path) -> int:
    """`verify`: face verification from the run's latent codes and the baseline CNN -> RUN/verification.json."""
    from dataclasses import replace

    from core.metrics.verification import FILE, VerifySettings, verify_run
    from core.metrics.verification_tables import summary

    run = find_run(runs_dir, a.run)
    settings = VerifySettings.fast() if a.fast else VerifySettings()
    changes = {k: v for k, v in (("folds", a.folds), ("pairs", a.pairs), ("cnn_steps", a.cnn_steps)) if v is not None}
    doc = verify_run(run, replace(settings, **changes), fast=a.fast, seed=a.seed, device=a.device,
                     progress=lambda message: print(message, flush=True))
    print(summary(doc))
    print(f"wrote {run.path / FILE}")
    return 0


def family_table(markdown: bool = False) -> str:
    """The registered model families with their defaults and papers, as plain text or the README's Markdown table."""
    flags = {s.key: s.flag for s in all_settings()}
    rows = [(f"`{f.name}`" if markdown else f.name, f.title, f.summary,
             ", ".join(f"{flags[k]} {v:g}" for k, v in f.defaults.items()) or "-", f.reference) for f in FAMILIES]
    if markdown:
        lines = ["| `--model` | family | what it does | defaults | reference |", "|---|---|---|---|---|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    return "\n".join(f"{name:9s} {title:7s} {summary} (defaults: {defaults}; {ref})"
                     for name, title, summary, defaults, ref in rows)


def cmd_models(a, argv, runs_dir: Path) -> int:
    """`models`: the model families `train --model` accepts."""
    print(family_table(a.markdown))
    return 0
