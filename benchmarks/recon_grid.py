"""A picture of held-out faces and their reconstructions by several runs, one labelled row each (for docs/).

    python benchmarks/recon_grid.py faces-beta-vae-s0 faces-vae-reconssiml1-s0 --faces 8 --out docs/faces_recipe.png

Every run must be on the same data set; the faces are the first --faces of its test split, spread by a fixed seed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.data import load_dataset
from core.data.images import save_png
from core.explore.encode import encode
from core.explore.generate import decode
from core.explore.traverse import labelled_grid
from core.runs.folder import Run, default_runs_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--faces", type=int, default=8)
    p.add_argument("--labels", help="comma-separated row labels for the runs (default: their names)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    runs = [Run(default_runs_dir() / name) for name in a.runs]
    dataset = load_dataset(runs[0].config.data, progress=False)
    test = dataset.indices("test")
    index = np.sort(np.random.default_rng(0).choice(test, size=min(a.faces, len(test)), replace=False))
    rows, labels = [dataset.images(index)], ["held-out faces"]
    for run, label in zip(runs, a.labels.split(",") if a.labels else a.runs):
        model = run.load_model("cpu").eval()
        rows.append(decode(model, encode(model, dataset, index)[0]))
        labels.append(f"{label}\n(step {run.checkpoint_step():,})")
    save_png(a.out, labelled_grid(np.stack(rows), labels, scale=2), scale=1)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
