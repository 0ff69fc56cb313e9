"""Does compositing with the mask head keep the background? (issue 15 §4)

For held-out faces without an attribute (default Smiling), the run's mean attribute vector is applied at each α and
the edit is decoded (a) as is and (b) composited over the original photo with the run's predicted person mask. Printed
per α: the mean change of the background (pixels outside the data set's true person mask, grey levels 0-255) against
the original, with and without compositing; the change inside the person against the reconstruction (the edit itself);
and the judge's flip rate on both (a real-images attribute classifier, its held-out accuracy printed).

    python benchmarks/masked_edit.py masked-vae --attribute Smiling --alphas 0,1,2 --faces 200

Needs a run trained with --mask-head on a data set with masks (SynthFaces renders them). Not a test: the numbers go
to benchmarks/RESULTS.md with the command.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.data import load_dataset
from core.explore.arithmetic import VectorSpec, build_vector, edit
from core.explore.composite import change_outside, masked_edit
from core.explore.encode import encode, load_or_encode
from core.data.images import save_png
from core.explore.generate import decode
from core.explore.traverse import labelled_grid
from core.metrics.classifier import ClassifierSettings, load_or_train
from core.metrics.registry import FAST
from core.runs.folder import Run, default_runs_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--attribute", default="Smiling")
    p.add_argument("--alphas", default="0,1,2")
    p.add_argument("--faces", type=int, default=200)
    p.add_argument("--picture", type=Path, help="also draw 8 of the faces: original, edit as decoded and composited "
                                                "at the largest α, and the predicted mask")
    p.add_argument("--alpha-picture", type=Path, help="also draw 8 of the faces, their reconstructions and the edit "
                                                      "composited at every α above 0 (docs/demo_smile.png)")
    a = p.parse_args()
    run = Run(default_runs_dir() / a.run)
    model = run.load_model("cpu").eval()
    dataset = load_dataset(run.config.data, progress=False)
    train = load_or_encode(run, "train", 5000, dataset)
    delta = build_vector(train, VectorSpec(a.attribute))
    test = dataset.indices("test")
    column = dataset.attributes.names.index(a.attribute)
    without = test[~dataset.attributes.values[test, column]]  # in index order similar faces sit together: draw
    index = np.sort(np.random.default_rng(0).choice(without, min(a.faces, len(without)), replace=False))
    faces, (person, _) = dataset.images(index), dataset.masks(index)
    z = encode(model, dataset, index)[0]
    edits = FAST["edits"]  # the judge `evaluate --fast` trains (and caches)
    judge = load_or_train(dataset, ClassifierSettings.of(dataset, run.config.data.seed, edits["classifier_steps"],
                                                         edits["classifier_test_images"], 0))
    reconstruction = decode(model, z)
    inside = np.broadcast_to(person >= 128, faces.shape)
    rows, composited = [], {}
    for alpha in [float(x) for x in a.alphas.split(",")]:
        codes = edit(z, delta, alpha)[:, 0]
        plain = decode(model, codes)
        kept = composited[alpha] = masked_edit(model, faces, z, codes)
        flips = [float((judge.score(x)[:, column] > 0.5).mean()) for x in (plain, kept)]
        edit_size = float(np.abs(plain.astype(np.int16) - reconstruction)[inside].mean())
        rows.append({"alpha": alpha, "background_change_plain": change_outside(faces, plain, person),
                     "background_change_composited": change_outside(faces, kept, person),
                     "person_change_plain": edit_size, "flip_plain": flips[0], "flip_composited": flips[1]})
    print(f"run {a.run} (step {run.checkpoint_step()}), {len(index)} held-out faces without {a.attribute}; "
          f"judge held-out ROC-AUC on real faces {judge.aucs.get(a.attribute)}")
    print("| α | background change, plain | background change, composited | edit inside the person | "
          "flip rate, plain | flip rate, composited |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['alpha']:g} | {r['background_change_plain']:.2f} | {r['background_change_composited']:.2f} | "
              f"{r['person_change_plain']:.2f} | {r['flip_plain']:.2f} | {r['flip_composited']:.2f} |")
    print(json.dumps(rows))
    few = np.linspace(0, len(index) - 1, 8).round().astype(int)  # spread over the sorted faces: every expression
    if a.picture:
        mask = decode(model, z[few], part="mask")
        pictures = [faces[few], plain[few], kept[few], np.repeat(mask, 3, axis=1)]
        labels = ["held-out faces", f"edit, alpha = {alpha:g}\nas decoded", f"edit, alpha = {alpha:g}\ncomposited",
                  "predicted mask"]
        save_png(a.picture, labelled_grid(np.stack(pictures), labels, scale=2))
        print(f"wrote {a.picture}")
    if a.alpha_picture:
        steps = [alpha for alpha in composited if alpha > 0]
        pictures = [faces[few], reconstruction[few], *(composited[alpha][few] for alpha in steps)]
        labels = ["held-out faces", "reconstructions", *(f"alpha = {alpha:g}\ncomposited" for alpha in steps)]
        save_png(a.alpha_picture, labelled_grid(np.stack(pictures), labels, scale=2))
        print(f"wrote {a.alpha_picture}")


if __name__ == "__main__":
    main()
