"""Sweeps over model families and hyper-parameters: one run per (grid entry, seed), trained with the project's CLI
to each milestone of --steps, evaluated at each, then one table (median and min-max over seeds, at the last
milestone) and the curve of a score against steps.

    python benchmarks/family_sweep.py --dataset dsprites --seeds 0,1,2 --steps 1000,2500 --jobs 2 \\
        --grid vae "beta-vae:--beta 4" beta-tcvae factor-vae dip-vae-1 dip-vae-2 u-vitae c-vitae \\
        --train-args "--preset tiny --latent-dim 10" --fast --plot docs/family_sweep_dsprites.svg

A grid entry is a family name, optionally followed by ':' and more `python -m core train` options for that entry;
a β sweep is the grid "beta-vae:--beta 1" "beta-vae:--beta 4" ... (plot it against β with --plot-x beta). Every
entry shares --train-args, --steps and the seeds: the same network, data and budget.

Runs are named <prefix>-<entry>-s<seed> in the runs folder ($LATENTLAB_CHECKPOINTS or checkpoints/); each
milestone's scores are appended to <prefix>.jsonl there, so the command can be stopped and re-run: a milestone
already recorded is not trained or evaluated again, and a run continues from its last checkpoint (the trainer's
resume is exact). On the CPU every training process gets one thread (--jobs of them at once); on a GPU
(--device cuda, --jobs 1) the same grid at a longer budget is the same command with larger --steps.
With `probes` among --metrics a third table gives, per entry and milestone, each attribute's held-out probe AUC,
the lowest of them, the reconstruction error and the minutes spent in training steps: a recipe search, e.g.

    python benchmarks/family_sweep.py --dataset synthfaces --prefix recipe --seeds 0 --steps 1500,3000 \
        --grid vae "vae:--recon ssim-l1" "vae:--batch-size 32" --train-args "--preset small --latent-dim 64" \
        --metrics probes,reconstruction --fast

Not a test: the numbers go to benchmarks/RESULTS.md with the command.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.metrics.evaluate import load_eval
from core.metrics.leaderboard import Spread, spread_text
from core.metrics.tables import SCORES
from core.runs.folder import Run, default_runs_dir

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]
# ELBO is not among the comparison table's scores (IWAE is); the sweep reports both, as the source documents do.
COLUMNS = {"elbo": ("likelihood", "elbo"), "ssim": ("reconstruction", "ssim"),
           **{name: (name, key) for name, (_, key) in SCORES.items()}}
LABELS = {"elbo": "ELBO (nats/image)", "ssim": "reconstruction SSIM",
          **{name: label for name, (label, _) in SCORES.items()}}
# The VITAE paper's dSprites table (Detlefsen & Hauberg 2019): ELBO (nats) and DCI disentanglement per family.
RECORDING = threading.Lock()
SOURCE = {"vae": (-47.05, 0.05), "beta-vae": (-79.45, 0.18), "beta-tcvae": (-66.48, 0.30),
          "dip-vae-2": (-46.32, 0.12), "u-vitae": (-55.25, 0.22), "c-vitae": (-68.26, 0.38)}


@dataclass(frozen=True)
class Entry:
    """One grid point: a family and the options that set it apart from the other entries."""
    family: str
    options: str

    @classmethod
    def parse(cls, text: str) -> "Entry":
        family, _, options = text.partition(":")
        return cls(family.strip(), " ".join(shlex.split(options)))

    @property
    def slug(self) -> str:
        words = [re.sub(r"[^A-Za-z0-9.]", "", w) for w in shlex.split(self.options)]
        return "-".join([self.family, *[w for w in words if w]])

    def option(self, name: str) -> float | None:
        words = shlex.split(self.options)
        flag = f"--{name.replace('_', '-')}"
        return float(words[words.index(flag) + 1]) if flag in words[:-1] else None


def run_name(a: argparse.Namespace, entry: Entry, seed: int) -> str:
    return f"{a.prefix}-{entry.slug}-s{seed}"


def records(a: argparse.Namespace) -> list[dict]:
    path = a.runs / f"{a.prefix}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def call(a: argparse.Namespace, name: str, command: list[str]) -> bool:
    log = a.runs / f"{name}.log"
    with open(log, "a") as out:
        done = subprocess.run([sys.executable, "-m", "core", *command], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        print(f"{name}: `{' '.join(command[:2])}` exited {done.returncode} (log {log})", flush=True)
    return done.returncode == 0


def advance(a: argparse.Namespace, entry: Entry, seed: int, done: set[tuple[str, int]]) -> None:
    """Train the run to each milestone it has not reached, evaluate it there and record the scores."""
    name = run_name(a, entry, seed)
    run = Run(a.runs / name)
    for milestone in a.steps:
        if (name, milestone) in done:
            continue
        step = run.checkpoint_step() if (run.path / "config.json").is_file() else None
        if step is not None and step > milestone:
            print(f"{name}: already at step {step}, past {milestone}: that milestone is left out", flush=True)
            continue
        if step is None:
            command = ["train", "--name", name, "--model", entry.family, "--dataset", a.dataset, "--seed", str(seed),
                       *shlex.split(a.train_args), *shlex.split(entry.options)]
        else:
            command = ["train", "--resume", name]
        where = ["--device", a.device, *(["--threads", "1"] if a.device == "cpu" else [])]
        if step != milestone and not call(a, name, [*command, "--steps", str(milestone), *where]):
            return
        if (reached := run.checkpoint_step()) != milestone:  # a cancelled run exits cleanly, short of its milestone
            print(f"{name}: stopped at step {reached}, before {milestone}: not evaluated", flush=True)
            return
        evaluate = ["evaluate", name, "--metrics", a.metrics, "--device", a.device, "--seed", "0",
                    *(["--fast"] if a.fast else []), *[x for s in a.set for x in ("--set", s)]]
        doc = load_eval(run)
        if (doc is None or doc.get("step") != milestone) and not call(a, name, evaluate):
            return
        doc = load_eval(run)
        scores = {column: doc["results"].get(metric, {}).get(key) for column, (metric, key) in COLUMNS.items()}
        record = {"run": name, "entry": entry.slug, "family": entry.family, "options": entry.options, "seed": seed,
                  "step": milestone, "scores": {k: v for k, v in scores.items() if isinstance(v, (int, float))},
                  "probes": {p["name"]: p["auc"] for p in doc["results"].get("probes", {}).get("attributes", [])
                             if isinstance(p.get("auc"), (int, float))},
                  "train_seconds": train_seconds(run)}
        with RECORDING, open(a.runs / f"{a.prefix}.jsonl", "a") as log:  # one line per milestone, as it ends
            log.write(json.dumps(record) + "\n")
        print(f"{name}: step {milestone} evaluated", flush=True)


def train_seconds(run: Run) -> float | None:
    """Wall seconds the run has trained, resumes included: the sum of the logged steps' durations."""
    lines = run.metrics("train")
    if not lines or not all("images_per_s" in r for r in lines):
        return None
    batch, steps = run.config.train.batch_size, [0] + [r["step"] for r in lines]
    return sum((b - a) * batch / r["images_per_s"] for a, b, r in zip(steps, steps[1:], lines) if r["images_per_s"] > 0)


def probe_table(a: argparse.Namespace, rows: list[dict]) -> str:
    """Per entry and milestone: each attribute's held-out probe AUC (median over seeds), the lowest of them, the
    reconstruction error and the training minutes: does a recipe learn every factor, and at what cost."""
    names = sorted({n for r in rows for n in r.get("probes", {})})
    head = ["entry", "steps", *names, "lowest", "recon MSE/pixel", "recon SSIM", "train min"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for entry in a.grid:
        for m in a.steps:
            mine = [r for r in rows if r["entry"] == entry.slug and r["step"] == m and r["seed"] in a.seeds]
            if not any(r.get("probes") for r in mine):
                continue
            aucs = {n: Spread.of([r["probes"][n] for r in mine if n in r.get("probes", {})]) for n in names}
            lowest = min((v.median for v in aucs.values() if v), default=None)
            mse, similarity = (Spread.of([r["scores"][c] for r in mine if c in r["scores"]])
                               for c in ("reconstruction", "ssim"))
            minutes = Spread.of([r["train_seconds"] / 60 for r in mine if r.get("train_seconds")])
            cells = [f"{entry.family} {entry.options}".strip(), str(m), *[f"{v.median:.2f}" if v else "–"
                                                                          for v in aucs.values()],
                     "–" if lowest is None else f"{lowest:.2f}", f"{mse.median:.4f}" if mse else "–",
                     f"{similarity.median:.3f}" if similarity else "–",
                     f"{minutes.median:.1f}" if minutes else "–"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(a: argparse.Namespace, rows: list[dict], step: int) -> list[dict]:
    """Per grid entry at one milestone: the seeds recorded and each score's median, min and max."""
    out = []
    for entry in a.grid:
        mine = [r for r in rows if r["entry"] == entry.slug and r["step"] == step and r["seed"] in a.seeds]
        out.append({"entry": entry, "seeds": len(mine),
                    **{c: Spread.of([r["scores"][c] for r in mine if c in r["scores"]]) for c in COLUMNS}})
    return out


def table(a: argparse.Namespace, rows: list[dict]) -> str:
    columns = [c for c in COLUMNS if any(r[c] for r in rows)]
    source = a.dataset == "dsprites"
    head = ["entry", "seeds", *[LABELS[c] for c in columns], *(["source ELBO", "source DCI D"] if source else [])]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        entry = r["entry"]
        cells = [f"{entry.family} {entry.options}".strip(), str(r["seeds"]), *[spread_text(r[c]) for c in columns]]
        if source:
            cells += [f"{v:g}" for v in SOURCE[entry.family]] if entry.family in SOURCE else ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_table(a: argparse.Namespace, rows: list[dict], column: str) -> str:
    """One score's median over seeds per entry (rows) and milestone (columns): how far training has to go."""
    lines = [f"| {LABELS[column]}, median over seeds | " + " | ".join(f"{m} steps" for m in a.steps) + " |",
             "|---" * (len(a.steps) + 1) + "|"]
    for entry in a.grid:
        values = [Spread.of([r["scores"][column] for r in rows if r["entry"] == entry.slug and r["step"] == m
                          and r["seed"] in a.seeds and column in r["scores"]]) for m in a.steps]
        cells = [spread_text(Spread.of([v.median]) if v else None) for v in values]
        lines.append(f"| {entry.family} {entry.options}".rstrip() + " | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def svg_plot(series: dict[str, list[tuple[float, float]]], x_label: str, title: str, log_x: bool) -> str:
    """Lines of (x, score in [0, 1]) with one colour per series. Hand-written SVG: no plotting library in the
    requirements writes a static image without a browser."""
    width, height, left, right, top, bottom = 680, 360, 50, 210, 30, 40
    xs = [x for points in series.values() for x, _ in points] or [1.0]
    lo, hi = min(xs), max(xs)
    scale = (lambda v: math.log2(v)) if log_x else (lambda v: v)

    def x(v: float) -> float:
        return left + (width - left - right) * ((scale(v) - scale(lo)) / (scale(hi) - scale(lo)) if hi > lo else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - min(max(v, 0.0), 1.0))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18" font-size="14">{title}</text>']
    for v in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for tick in sorted(set(xs)):
        parts.append(f'<text x="{x(tick):.1f}" y="{height - bottom + 16}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">{x_label}</text>')
    for i, (label, points) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in sorted(points))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="3" fill="{colour}"/>' for px, py in points]
        ly = top + 16 * i + 10
        parts.append(f'<line x1="{width - right + 12}" x2="{width - right + 30}" y1="{ly}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="2"/><text x="{width - right + 36}" y="{ly + 4}">{label}</text>')
    return "\n".join(parts + ["</svg>"])


def plot(a: argparse.Namespace, rows: list[dict]) -> str:
    """Against steps: the chosen score's median per entry. Against an option (e.g. beta): every score in [0, 1]
    at the last milestone, one line each."""
    if a.plot_x == "steps":
        series = {}
        for entry in a.grid:
            points = [(m, v.median) for m in a.steps
                      if (v := Spread.of([r["scores"][a.plot_metric] for r in rows if r["entry"] == entry.slug
                                       and r["step"] == m and a.plot_metric in r["scores"]]))]
            if points:
                series[f"{entry.family} {entry.options}".strip()] = points
        return svg_plot(series, "training steps", f"{LABELS[a.plot_metric]} against steps on {a.dataset}", False)
    last = summary(a, rows, a.steps[-1])
    scores = ("beta_vae", "factor_vae", "mig", "dci", "sap")
    series = {LABELS[c]: [(r["entry"].option(a.plot_x), r[c].median) for r in last
                          if r[c] and r["entry"].option(a.plot_x)] for c in scores}
    return svg_plot({k: v for k, v in series.items() if v}, f"{a.plot_x} (log scale)",
                    f"disentanglement against {a.plot_x} on {a.dataset}", True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="dsprites")
    p.add_argument("--grid", nargs="+", default=["vae", "beta-vae"], help="entries: FAMILY or 'FAMILY:OPTIONS'")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", default="1000,2500", help="milestones: train to each, evaluate at each")
    p.add_argument("--jobs", type=int, default=2, help="training processes at once (on the CPU, one thread each)")
    p.add_argument("--device", default="cpu", help="where to train and evaluate: cpu, cuda, ...")
    p.add_argument("--train-args", default="", help="more `python -m core train` options for every entry, quoted")
    p.add_argument("--metrics", default="beta_vae,factor_vae,mig,dci,likelihood")
    p.add_argument("--fast", action="store_true", help="fast-mode evaluation")
    p.add_argument("--set", action="append", default=[], help="evaluation override, as `core evaluate --set`")
    p.add_argument("--prefix", help="run name prefix (default: sweep-<dataset>)")
    p.add_argument("--plot", type=Path, help="write an SVG plot here")
    p.add_argument("--plot-x", default="steps", help="'steps', or an option of the grid entries such as beta")
    p.add_argument("--plot-metric", default="dci", choices=[c for c in COLUMNS if c != "elbo"],
                   help="the score plotted against steps")
    p.add_argument("--no-train", action="store_true", help="only print the tables of what is recorded")
    a = p.parse_args(argv)
    a.grid = [Entry.parse(g) for g in a.grid]
    a.seeds = [int(s) for s in a.seeds.split(",")]
    a.steps = sorted(int(s) for s in a.steps.split(","))
    a.prefix = a.prefix or f"sweep-{a.dataset}"
    a.runs = default_runs_dir()
    if len({e.slug for e in a.grid}) != len(a.grid) or min(a.steps) < 1 or a.jobs < 1:
        p.error("grid entries must differ, --steps must be positive and --jobs at least 1")
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    a.runs.mkdir(parents=True, exist_ok=True)
    if not a.no_train:
        done = {(r["run"], r["step"]) for r in records(a)}
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            list(pool.map(lambda es: advance(a, *es, done), [(e, s) for s in a.seeds for e in a.grid]))
    rows = records(a)
    print(f"\n{a.dataset}, {a.steps[-1]} steps: median (min–max) over seeds\n")
    print(table(a, summary(a, rows, a.steps[-1])))
    print()
    print(curve_table(a, rows, a.plot_metric))
    if any(r.get("probes") for r in rows):
        print()
        print(probe_table(a, rows))
    if a.plot:
        a.plot.write_text(plot(a, rows))
        print(f"plot: {a.plot}")


if __name__ == "__main__":
    main()
