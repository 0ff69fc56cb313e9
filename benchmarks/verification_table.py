"""Face verification table: train VAE, β-VAE (β = 2, 4, 5, 10) and ModVAE at 32 and 64 latent dims on each data
set with the project's CLI, verify every run (`python -m core verify`), and print one Markdown table per data set
with the end-to-end CNN baseline beside them.

    python benchmarks/verification_table.py --datasets synthfaces,celeba --dims 32,64 \\
        --steps synthfaces=6000,celeba=3000 --jobs 2

Runs are named <prefix>-<dataset>-<model>-d<dims> (e.g. vt-celeba-bvae4-d32) in the runs folder
($LATENTLAB_CHECKPOINTS or checkpoints/). A finished run is not trained again and a run whose verification.json is
for its last checkpoint (and the same --fast) is not verified again, so the command can be stopped and re-run.
Training processes get one CPU thread each (--jobs at once); verifications run one at a time, so the CNN of a
(data set, dims) pair is trained once and then read from its cache ($LATENTLAB_CACHE/identity-cnn).
ModVAE: SynthFaces gets dims // 9 dims per factor (the identity block is the blocks of the 5 identity factors);
CelebA gets dims // 2 (half the code is the identity block). Not a test: the numbers go to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.metrics.verification import load_verification
from core.metrics.verification_tables import SCORE_LABELS
from core.runs.folder import Run, default_runs_dir

MODELS = {"vae": ("vae", 1.0), "bvae2": ("beta-vae", 2.0), "bvae4": ("beta-vae", 4.0), "bvae5": ("beta-vae", 5.0),
          "bvae10": ("beta-vae", 10.0), "modvae": ("modvae", 1.0)}
LABELS = {"vae": "VAE", "bvae2": "β-VAE β=2", "bvae4": "β-VAE β=4", "bvae5": "β-VAE β=5",
          "bvae10": "β-VAE β=10", "modvae": "ModVAE"}


def run_name(a, dataset: str, key: str, dims: int) -> str:
    return f"{a.prefix}-{dataset}-{key}-d{dims}"


def train_command(a, dataset: str, key: str, dims: int) -> list[str]:
    model, beta = MODELS[key]
    command = ["train", "--name", run_name(a, dataset, key, dims), "--model", model, "--dataset", dataset,
               "--latent-dim", str(dims), "--beta", f"{beta:g}", "--steps", str(a.steps[dataset]),
               "--seed", str(a.seed), "--threads", "1", "--device", a.device]
    if dataset == "celeba":
        command += ["--data-root", a.celeba_root]
    if model == "modvae":
        command += ["--dims-per-factor", str(dims // 9 if dataset == "synthfaces" else dims // 2)]
    return command + shlex.split(a.train_args)


def train(a, dataset: str, key: str, dims: int) -> None:
    name = run_name(a, dataset, key, dims)
    run = Run(a.runs / name)
    if (run.path / "config.json").is_file():
        if run.status().get("state") == "finished":
            return
        command = ["train", "--resume", name]
    else:
        command = train_command(a, dataset, key, dims)
    log = a.runs / f"{name}.log"
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-m", "core", "--runs-dir", str(a.runs), *command], cwd=ROOT,
                              env=_env(), stdout=out, stderr=subprocess.STDOUT)
    print(f"trained {name}: exit {done.returncode} (log {log})", flush=True)


def verify(a, dataset: str, key: str, dims: int) -> None:
    run = Run(a.runs / run_name(a, dataset, key, dims))
    if not run.path.is_dir() or run.status().get("state") != "finished":
        return
    doc = load_verification(run)
    if doc and doc.get("step") == run.checkpoint_step() and doc.get("fast") == a.fast:
        return
    log = a.runs / f"{run.name}.verify.log"
    command = [sys.executable, "-m", "core", "--runs-dir", str(a.runs), "verify", run.name, "--device", a.device,
               "--seed", str(a.seed), *(["--fast"] if a.fast else []), *shlex.split(a.verify_args)]
    with open(log, "w") as out:
        done = subprocess.run(command, cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    print(f"verified {run.name}: exit {done.returncode} (log {log})", flush=True)


def _env() -> dict[str, str]:
    # passive OpenMP waits: spinning threads of one process starve the others on a shared CPU
    return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def label(score: str) -> str:
    return SCORE_LABELS[score].replace("|", "\\|")  # a bare | would split the Markdown cell


def cell(r: dict | None, key: str = "auc") -> str:
    return "–" if r is None else f"{r[key]:.3f} ± {r[key + '_std']:.3f}"


def best(block: dict | None) -> tuple[str | None, dict | None]:
    if not block:
        return None, None
    score = max(block["scores"], key=lambda s: block["scores"][s]["auc"])
    return score, block["scores"][score]


def table(a, dataset: str) -> str:
    """One Markdown table: a row per (dims, model) with a verification.json, then the CNN of each dims."""
    lines = [f"**{dataset}** ({a.steps[dataset]:,} training steps; verification {'--fast' if a.fast else 'full'})", "",
             "| dims | model | step | best score (all dims) | AUC | accuracy | TAR@FAR=1% | cosine AUC | "
             "identity block AUC | other dims AUC |", "|---" * 10 + "|"]
    for dims in a.dims:
        cnn = None
        for key in a.models:
            doc = load_verification(Run(a.runs / run_name(a, dataset, key, dims)))
            if doc is None:
                lines.append(f"| {dims} | {LABELS[key]} | not verified yet |" + " |" * 7)
                continue
            latent = doc["results"]["latent"]
            score, r = best(latent["all"])
            ident, other = best(latent.get("identity"))[1], best(latent.get("other"))[1]
            lines.append(f"| {dims} | {LABELS[key]} | {doc['step']:,} | {label(score)} | {cell(r)} | "
                         f"{cell(r, 'accuracy')} | {cell(r, 'tar_at_far')} | "
                         f"{cell(latent['all']['scores']['cosine'])} | {cell(ident)} | {cell(other)} |")
            if cnn is None and "cnn" in doc["results"]:
                cnn = doc
        if cnn is not None:
            block = cnn["results"]["cnn"]["all"]
            score, r = best(block)
            c = cnn["cnn"]["settings"]
            lines.append(f"| {dims} | E2E CNN ({c['steps']:,} steps × {c['batch_size']}) | – | {label(score)} | "
                         f"{cell(r)} | {cell(r, 'accuracy')} | {cell(r, 'tar_at_far')} | "
                         f"{cell(block['scores']['cosine'])} | – | – |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="synthfaces,celeba")
    p.add_argument("--celeba-root", default=str(ROOT.parent / "shared" / "data" / "celeba"))
    p.add_argument("--dims", default="32,64")
    p.add_argument("--models", default=",".join(MODELS), help=f"subset of {', '.join(MODELS)}")
    p.add_argument("--steps", default="synthfaces=6000,celeba=3000",
                   help="training steps: one number, or dataset=steps pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=2, help="training processes at once (one CPU thread each)")
    p.add_argument("--train-args", default="", help="more `python -m core train` options, quoted")
    p.add_argument("--fast", action="store_true", help="`verify --fast` (fewer images and pairs, a 300-step CNN)")
    p.add_argument("--verify-args", default="", help="more `python -m core verify` options, quoted")
    p.add_argument("--prefix", default="vt")
    p.add_argument("--no-train", action="store_true", help="only verify and tabulate the runs that exist")
    a = p.parse_args(argv)
    a.datasets, a.models = a.datasets.split(","), a.models.split(",")
    a.dims = [int(d) for d in a.dims.split(",")]
    if a.steps.isdigit():
        a.steps = {d: int(a.steps) for d in a.datasets}
    else:
        a.steps = {k: int(v) for k, v in (pair.split("=") for pair in a.steps.split(","))}
    a.runs = default_runs_dir().resolve()
    a.runs.mkdir(parents=True, exist_ok=True)
    grid = [(d, k, n) for d in a.datasets for n in a.dims for k in a.models]
    if not a.no_train:
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            list(pool.map(lambda g: train(a, *g), grid))
    for g in grid:
        verify(a, *g)
    for dataset in a.datasets:
        print(table(a, dataset) + "\n")


if __name__ == "__main__":
    main()
