"""β sweeps: train one run per (β, seed) with the project's CLI, evaluate each, print the table, draw the plot.

    python benchmarks/beta_sweep.py --dataset dsprites --betas 1,2,4,8,16 --seeds 0,1 --steps 6000 \\
        --jobs 2 --train-args "--latent-dim 10 --lr 5e-4" --plot docs/beta_sweep_dsprites.svg

Runs are named <prefix>-b<β>-s<seed> in the runs folder ($LATENTLAB_CHECKPOINTS or checkpoints/). A run that
already finished is not trained again and an evaluation already in its eval.json is not repeated, so the command
can be re-run to add seeds or metrics, or to print the table again. Every training process gets one CPU thread
(--jobs of them run at once). The table gives the mean and the spread (min-max) over seeds per β.
Not a test: the numbers go to benchmarks/RESULTS.md with the command.
"""
from __future__ import annotations

import argparse
import math
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.metrics.evaluate import load_eval
from core.metrics.tables import SCORES, comparison_rows
from core.runs.folder import Run, default_runs_dir

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def run_name(prefix: str, beta: float, seed: int) -> str:
    return f"{prefix}-b{beta:g}-s{seed}"


def train(a: argparse.Namespace, beta: float, seed: int) -> None:
    name = run_name(a.prefix, beta, seed)
    run = Run(a.runs / name)
    if (run.path / "config.json").is_file():
        if run.status().get("state") == "finished":
            return
        command = ["-m", "core", "train", "--resume", name]
    else:
        command = ["-m", "core", "train", "--name", name, "--model", a.model, "--dataset", a.dataset,
                   "--beta", f"{beta:g}", "--seed", str(seed), "--steps", str(a.steps), "--threads", "1",
                   *shlex.split(a.train_args)]
    log = a.runs / f"{name}.log"
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, *command], stdout=out, stderr=subprocess.STDOUT)
    print(f"trained {name}: exit {done.returncode} (log {log})", flush=True)


def evaluate(a: argparse.Namespace, beta: float, seed: int) -> None:
    run = Run(a.runs / run_name(a.prefix, beta, seed))
    if run.status().get("state") != "finished":
        return
    doc = load_eval(run) or {"results": {}}
    wanted = a.metrics.split(",")
    if all(m in doc["results"] and doc.get("step") == run.checkpoint_step() for m in wanted):
        return
    command = [sys.executable, "-m", "core", "evaluate", run.name, "--metrics", a.metrics, "--device", "cpu",
               *(["--fast"] if a.fast else []), *[x for s in a.set for x in ("--set", s)]]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"evaluated {run.name}", flush=True)


def summary(a: argparse.Namespace) -> list[dict]:
    """Per β: each metric's mean and range over the seeds that finished."""
    names = {run_name(a.prefix, b, s) for b in a.betas for s in a.seeds}
    rows = [r for r in comparison_rows([Run(a.runs / n) for n in sorted(names)]) if r["run"] in names]
    out = []
    for beta in a.betas:
        mine = [r for r in rows if r["β"] == beta]
        entry = {"β": beta, "seeds": len(mine)}
        for label, _ in SCORES.values():
            values = [r[label] for r in mine if r[label] is not None]
            if values:
                entry[label] = (statistics.fmean(values), min(values), max(values))
        out.append(entry)
    return out


def table(rows: list[dict]) -> str:
    labels = [label for label, _ in SCORES.values() if any(label in r for r in rows)]
    lines = ["| β | seeds | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
    for r in rows:
        cells = [f"{r[label][0]:.3g} ({r[label][1]:.3g}–{r[label][2]:.3g})" if label in r else "–" for label in labels]
        lines.append(f"| {r['β']:g} | {r['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def svg_plot(rows: list[dict], labels: list[str], title: str) -> str:
    """β (log2 axis) against scores in [0, 1]: mean line, min-max whiskers. Hand-written SVG: no plotting
    library in the requirements can write a static image without a browser."""
    width, height, left, right, top, bottom = 640, 360, 50, 170, 30, 40
    betas = [r["β"] for r in rows]
    lo, hi = min(betas), max(betas)

    def x(beta: float) -> float:
        return left + (width - left - right) * (math.log2(beta / lo) / math.log2(hi / lo) if hi > lo else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - v)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18" font-size="14">{title}</text>']
    for v in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for beta in betas:
        parts.append(f'<text x="{x(beta):.1f}" y="{height - bottom + 16}" text-anchor="middle">{beta:g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">β (log scale)</text>')
    for i, label in enumerate(labels):
        colour = PALETTE[i % len(PALETTE)]
        points = [(x(r["β"]), r[label]) for r in rows if label in r]
        if not points:
            continue
        path = " ".join(f"{px:.1f},{y(m):.1f}" for px, (m, _, _) in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, (m, low, high) in points:
            parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y(low):.1f}" y2="{y(high):.1f}" stroke="{colour}"/>'
                         f'<circle cx="{px:.1f}" cy="{y(m):.1f}" r="3" fill="{colour}"/>')
        ly = top + 16 * i + 10
        parts.append(f'<line x1="{width - right + 12}" x2="{width - right + 30}" y1="{ly}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="2"/><text x="{width - right + 36}" y="{ly + 4}">{label}</text>')
    return "\n".join(parts + ["</svg>"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="dsprites")
    p.add_argument("--model", default="beta-vae")
    p.add_argument("--betas", default="1,2,4,8,16")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--jobs", type=int, default=2, help="training processes at once (one CPU thread each)")
    p.add_argument("--train-args", default="", help="more `python -m core train` options, quoted")
    p.add_argument("--metrics", default="beta_vae,factor_vae,mig,dci,sap")
    p.add_argument("--fast", action="store_true", help="fast-mode evaluation")
    p.add_argument("--set", action="append", default=[], help="evaluation override, as `core evaluate --set`")
    p.add_argument("--prefix", help="run name prefix (default: sweep-<model>-<dataset>)")
    p.add_argument("--plot", type=Path, help="write the β-vs-metric SVG here")
    p.add_argument("--no-train", action="store_true", help="only evaluate and tabulate the runs that exist")
    a = p.parse_args(argv)
    a.betas = [float(b) for b in a.betas.split(",")]
    a.seeds = [int(s) for s in a.seeds.split(",")]
    a.prefix = a.prefix or f"sweep-{a.model}-{a.dataset}"
    a.runs = default_runs_dir()
    grid = [(b, s) for s in a.seeds for b in a.betas]
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        if not a.no_train:
            list(pool.map(lambda bs: train(a, *bs), grid))
        list(pool.map(lambda bs: evaluate(a, *bs), grid))
    rows = summary(a)
    print(table(rows))
    if a.plot:
        labels = [label for name, (label, _) in SCORES.items() if name in a.metrics.split(",")
                  and name in ("beta_vae", "factor_vae", "mig", "dci", "sap")]
        a.plot.write_text(svg_plot(rows, labels, f"{a.model} on {a.dataset}: disentanglement vs β"))
        print(f"plot: {a.plot}")


if __name__ == "__main__":
    main()
