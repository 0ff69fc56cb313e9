"""Edit quality: do latent edits z + α·ΔZ add the attribute, and what else do they change?

For each chosen attribute and each way of building ΔZ (core.arithmetic: mean difference, balanced over
confounders, conditional on the other chosen attributes), held-out faces WITHOUT the attribute are encoded,
edited and decoded, and an attribute classifier (core.metrics.classifier) judges the result:

- flip rate(α): the share of edited faces judged to have the attribute (probability > 0.5). At α = 0 the
  edit is the plain reconstruction, so that entry is the judge's false-positive rate on reconstructions.
- dependency(α): mean absolute change of the judge's probabilities for every OTHER attribute, edit vs
  reconstruction (0 = the edit touched nothing else the judge can see).
- others kept(α): for the OTHER attribute the edit disturbs most, the share of faces whose judged value (present or
  not) is the same after the edit as on the reconstruction (1 = no other attribute flipped on any face). Attributes
  read from the edited one's own factor are left out (on SynthFaces a smile must flip Frowning and
  Mouth_Slightly_Open; eyeglasses must take sunglasses off).
- pixel change(α): mean absolute per-pixel difference (0..1) between edit and reconstruction: how much of
  the image moved, reported beside the flip rate so the trade-off is visible.

Two baselines say how far to trust the judge on decoded images: its positive rate on reconstructions of
faces WITH the attribute (a ceiling for the flip rate: reconstructions are blurrier than the images it
learnt from) and its held-out ROC-AUC per attribute on real images.
"""
from __future__ import annotations

import numpy as np
import torch

from core.explore.arithmetic import VectorError, VectorSpec, build_vector
from core.config import ConfigError
from core.data import Dataset
from core.data.images import to_uint8
from core.metrics.classifier import Judge, Reconstruct
from core.metrics.identity_cnn import IdentityJudge, embedding_distance
from core.models.vae import VAE
from core.device import INFERENCE_BATCH, to_float

DEFAULT_ATTRIBUTES = ("Smiling", "Eyeglasses", "Sunglasses")
DEFAULT_CONFOUNDERS = ("Male", "Young")
THRESHOLD = 0.5
# The judge must find the attribute in at least this share of the reconstructions of faces that have it before an
# edit's flip rate means anything: below it the model cannot draw the attribute, and what the judge accepts in
# edits is mostly artefacts (smudges judged as glasses: 17.5 % "glasses" on reconstructions, 2.4 % by a stronger judge).
DRAWN_MIN = 0.5


def parse_list(text: str, kind=str) -> list:
    """'a, b' -> ['a', 'b'] (the settings are strings so `--set edits.alphas=0,1,2` keeps its type)."""
    try:
        values = [kind(part.strip()) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{text!r}: give a comma-separated list of {kind.__name__} values, e.g. 0,1,2") from None
    if not values:
        raise ConfigError(f"{text!r}: the list is empty")
    return values


def vector_specs(attribute: str, chosen: list[str], names: list[str],
                 hold: tuple[str, ...] = ()) -> list[tuple[str, VectorSpec]]:
    """(label, spec) of every vector measured for one attribute: "mean"; "balanced" over Male × Young where the
    data set has them (CelebA's classic confounders), else over the other chosen attributes; "conditional", the mean
    vector with the other chosen attributes' directions removed; and "holding A, B", with the `hold` attributes'
    directions removed (each left out when there is nothing to balance, condition on or hold)."""
    others = tuple(a for a in chosen if a != attribute)
    confounders = tuple(c for c in DEFAULT_CONFOUNDERS if c in names and c != attribute) or others
    held = tuple(h for h in hold if h in names and h != attribute)
    specs = [("mean", VectorSpec(attribute, "mean"))]
    if confounders:
        specs.append(("balanced", VectorSpec(attribute, "balanced", confounders=confounders)))
    if others:
        specs.append(("conditional", VectorSpec(attribute, "mean", condition_on=others)))
    if held and held != others:
        specs.append((f"holding {', '.join(held)}", VectorSpec(attribute, "mean", condition_on=held)))
    return specs


@torch.inference_mode()
def judge_edits(model: VAE, judge: Judge, images: np.ndarray, delta: np.ndarray, alphas: list[float],
                attribute: str, watch: tuple[str, ...] = (), batch_size: int = INFERENCE_BATCH,
                identity: IdentityJudge | None = None, same_factor: tuple[str, ...] = ()) -> dict:
    """Flip rate, dependency and pixel change per α for uint8 `images` (N, 3, 64, 64) of faces without
    `attribute`, edited along `delta`; see the module docstring. `watch`: attributes whose mean signed change of
    the judged probability (edit − reconstruction) is reported per α under "watched" (e.g. does a smile drag
    faces away from Male?). With an `identity` CNN, "identity_change" per α: the mean identity distance of edit
    and reconstruction (0: as alike as two photos of one person, 1: as two people). "others_kept" leaves out the
    attributes in `same_factor`, read from the edited attribute's own factor (a smile must flip Frowning)."""
    device = next(model.parameters()).device
    a = judge.names.index(attribute)
    others = [i for i in range(len(judge.names)) if i != a]
    apart = [i for i in others if judge.names[i] not in same_factor]
    mu = _encode(model, images, batch_size)
    recon = _decode(model, mu, batch_size)
    p_recon = judge.model.probabilities(recon)
    step = torch.as_tensor(delta, dtype=torch.float32, device=device)
    flip, dependency, pixels, changed, kept = [], [], [], [], []
    watched = {name: [] for name in watch if name in judge.names}
    person, who = [], None if identity is None else identity.embed(recon.numpy())
    for alpha in alphas:
        edited = _decode(model, mu + alpha * step, batch_size)
        if identity is not None:
            person.append(float(embedding_distance(identity, who, identity.embed(edited.numpy())).mean()))
        p_edit = judge.model.probabilities(edited)
        moved = np.abs(p_edit[:, others] - p_recon[:, others])
        flip.append(float((p_edit[:, a] > THRESHOLD).mean()))
        dependency.append(float(moved.mean()) if others else 0.0)
        unchanged = (p_edit[:, apart] > THRESHOLD) == (p_recon[:, apart] > THRESHOLD)
        kept.append(float(unchanged.mean(0).min()) if apart else 1.0)
        pixels.append(float((edited - recon).abs().mean()))
        per_other = moved.mean(0)
        changed.append({judge.names[others[i]]: round(float(per_other[i]), 4) for i in np.argsort(-per_other)[:3]})
        for name, values in watched.items():
            i = judge.names.index(name)
            values.append(float((p_edit[:, i] - p_recon[:, i]).mean()))
    return {"flip_rate": flip, "dependency": dependency, "pixel_change": pixels, "most_changed": changed,
            "others_kept": kept,
            **({"watched": watched} if watched else {}), **({"identity_change": person} if person else {})}


def _encode(model: VAE, images: np.ndarray, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.encode(to_float(images[i:i + batch_size], device))[0]
                      for i in range(0, len(images), batch_size)])


def _decode(model: VAE, z: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Decoded images, float32 on the CPU (where the judge runs)."""
    return torch.cat([model.decode(z[i:i + batch_size]).float().cpu() for i in range(0, len(z), batch_size)])


def reconstructor(model: VAE, batch_size: int = INFERENCE_BATCH) -> Reconstruct:
    """The run's reconstructions (its decoded posterior means) of uint8 images, as uint8: what a judge trained
    with reconstructions (core.metrics.classifier) also learns from."""
    @torch.inference_mode()
    def reconstruct(images: np.ndarray) -> np.ndarray:
        return to_uint8(_decode(model, _encode(model, images, batch_size), batch_size))

    return reconstruct


@torch.inference_mode()
def positive_rate(model: VAE, judge: Judge, images: np.ndarray, attribute: str, reconstruct: bool,
                  batch_size: int = INFERENCE_BATCH) -> float:
    """Share of `images` (or of their reconstructions) that the judge calls positive for `attribute`."""
    x = _decode(model, _encode(model, images, batch_size), batch_size) if reconstruct else to_float(images, "cpu")
    return float((judge.model.probabilities(x)[:, judge.names.index(attribute)] > THRESHOLD).mean())


def edit_quality(model: VAE, dataset: Dataset, judge: Judge, encodings: dict[str, np.ndarray],
                 attributes: list[str], alphas: list[float], num_faces: int, seed: int,
                 hold: tuple[str, ...] = (), identity: IdentityJudge | None = None) -> dict:
    """The "edits" section of eval.json: per attribute present in the data set, the baselines and one entry
    per vector method (see vector_specs; `hold`: attributes to hold fixed in one more vector, and whose judged
    change every vector reports; `identity`: the identity CNN that measures how far each edit moves the person);
    attributes the data set lacks are listed under "missing"."""
    names = [str(n) for n in encodings["attribute_names"]]
    present = [a for a in attributes if a in names and a in judge.names]
    rng = np.random.default_rng(seed)
    test = dataset.indices("test")
    rows = []
    for attribute in present:
        has = dataset.attributes.column(attribute)[test]
        without = np.sort(rng.permutation(test[~has])[:num_faces])
        with_ = np.sort(rng.permutation(test[has])[:num_faces])
        row = {"name": attribute, "faces": len(without), "judge_auc": judge.aucs.get(attribute)}
        if len(without) == 0 or len(with_) == 0:
            rows.append({**row, "skipped": "the held-out images need faces both with and without it"})
            continue
        images = dataset.images(without)
        row["false_positive_rate_originals"] = positive_rate(model, judge, images, attribute, reconstruct=False)
        row["positive_rate_reconstructions_with"] = positive_rate(model, judge, dataset.images(with_), attribute,
                                                                  reconstruct=True)
        row["judgeable"] = row["positive_rate_reconstructions_with"] >= DRAWN_MIN
        row["vectors"] = []
        watch = tuple(h for h in hold if h != attribute)
        same = tuple(n for n in judge.names if n != attribute
                     and dataset.attribute_factor(n) == dataset.attribute_factor(attribute))
        for label, spec in vector_specs(attribute, present, names, hold):
            entry = {"method": label, "confounders": list(spec.confounders), "condition_on": list(spec.condition_on)}
            try:
                delta = build_vector(encodings, spec)
            except VectorError as e:
                row["vectors"].append({**entry, "skipped": str(e)})
                continue
            entry["norm"] = float(np.linalg.norm(delta))
            row["vectors"].append({**entry, **judge_edits(model, judge, images, delta, alphas, attribute, watch,
                                                                     identity=identity, same_factor=same)})
        rows.append(row)
    return {"alphas": alphas, "attributes": rows, "missing": [a for a in attributes if a not in present],
            "threshold": THRESHOLD}


def unjudgeable(result: dict) -> list[str]:
    """One sentence per edited attribute the run cannot draw (see DRAWN_MIN): its flip rates are not evidence."""
    return [f"{a['name']}: the judge finds it in {a['positive_rate_reconstructions_with']:.0%} of the run's "
            f"reconstructions of faces that have it (< {DRAWN_MIN:.0%}), so this run cannot draw it and its "
            f"{a['name']} edits cannot be judged reliably"
            for a in result.get("attributes", [])
            if a.get("positive_rate_reconstructions_with") is not None
            and a["positive_rate_reconstructions_with"] < DRAWN_MIN]


def mean_flip_rate(result: dict) -> float | None:
    """The headline of an "edits" result: the mean over attributes of the mean-difference vector's flip rate at
    the largest α (None when nothing was edited)."""
    flips = [v["flip_rate"][-1] for a in result.get("attributes", []) for v in a.get("vectors", [])
             if v.get("method") == "mean" and "flip_rate" in v]
    return float(np.mean(flips)) if flips else None
