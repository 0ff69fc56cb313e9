"""The attribute judge of the edit metrics: a small multi-label CNN trained on a data set's training split.

It is trained on real images with the data set's own labels, so it depends on the data set and its own settings
only, never on the run being evaluated: one judge serves every run of a data set. It is cached under
$LATENTLAB_CACHE/attribute-judge/ (default ~/.cache/latentlab), named by the data set and a hash of its
ClassifierSettings: `<data set>-<key>.safetensors` (weights only, read without pickle) and `<data set>-<key>.json`
(the settings, the weights' SHA-256, what it was trained on and its held-out ROC-AUC per attribute). A cache whose
JSON does not fit, whose settings differ or whose weights do not match their recorded hash is refused with a
warning naming the file and retrained over. On a ground-truth data set (SynthFaces) every image is rendered from
its factors and the labels are the renderer's exact ground truth, so there the judge learns from perfect labels.

A judge that sees only real images can be fooled by a decoder's artefacts (dark smudges judged as glasses). Given
the run's `reconstruct`, the judge is trained on real images *and* the run's reconstructions of them with the real
labels, with small shifts and brightness changes, so blur and smudges are not evidence; it is then the run's own
judge (its settings name the run's weights) and it reports its AUC and accuracy on reconstructions of held-out
faces next to those on the real ones.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from sklearn.metrics import roc_auc_score
from torch import nn

from core.data import DataError, Dataset
from core.data.cache import default_cache_dir
from core.fileio import read_json, write_bytes, write_json
from core.schema import ANY, MapOf, Nullable, Num, Obj, Str
from core.device import to_float

FOLDER = "attribute-judge"
# the cache's JSON, read through core.fileio: a file that does not fit means "train the judge again"
INFO_SCHEMA = Obj({"format": Str(100), "settings": ANY, "weights_sha256": Str(64),
                   "aucs": MapOf(Nullable(Num(0, 1))), "trained_on": Str(1000),
                   **{k: MapOf(Nullable(Num(0, 1))) for k in ("accuracy", "reconstruction_aucs",
                                                              "reconstruction_accuracy")}},
                  required=("format", "settings", "weights_sha256", "aucs", "trained_on"))
FORMAT = "latentlab-classifier-2"
MAX_WEIGHTS_BYTES = 64 << 20  # ~0.6 MB for 40 attributes; a larger file is not one this module wrote

logger = logging.getLogger(__name__)


class AttributeClassifier(nn.Module):
    """Four stride-2 convolutions (64 -> 4 pixels) and one linear layer: one logit per attribute."""

    def __init__(self, num_attributes: int):
        super().__init__()
        layers, channels = [], 3
        for width in (16, 32, 64, 64):
            layers += [nn.Conv2d(channels, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(64 * 4 * 4, num_attributes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, A) logits for float images in [0, 1] (N, 3, 64, 64)."""
        return self.head(self.features(x))

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """(N, A) float probabilities for float images in [0, 1] (N, 3, 64, 64)."""
        self.eval()
        device = next(self.parameters()).device
        out = [torch.sigmoid(self(images[i:i + batch_size].to(device))).cpu().numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.head.out_features), np.float32)


@dataclass(frozen=True)
class ClassifierSettings:
    """Everything the judge's training depends on: a cached judge is reused only when all of it matches."""

    dataset: str
    data_seed: int
    data_fingerprint: str  # of a few training images and their labels: a re-rendered or edited data set retrains
    train_images: int  # the training split's size: a data folder that grew (a finished download) retrains
    attributes: tuple[str, ...]
    steps: int
    batch_size: int
    test_images: int
    seed: int
    reconstructions_of: str = ""  # the SHA-256 of the run's weights whose reconstructions it also learns from

    @classmethod
    def of(cls, dataset: Dataset, data_seed: int, steps: int, test_images: int, seed: int,
           batch_size: int = 64, reconstructions_of: str = "") -> ClassifierSettings:
        """The settings of a judge of every attribute of `dataset` (split with `data_seed`)."""
        return cls(dataset.name, data_seed, data_fingerprint(dataset), len(dataset.indices("train")),
                   tuple(str(n) for n in dataset.attributes.names), steps, batch_size, test_images, seed,
                   reconstructions_of)

    def record(self) -> dict:
        """The settings as the cache's JSON records them; a real-images judge's without reconstructions_of, so its
        record (and key) is the one it had before the field existed and older caches stay valid."""
        fields = json.loads(json.dumps(asdict(self)))
        if not self.reconstructions_of:
            del fields["reconstructions_of"]
        return fields

    def key(self) -> str:
        """A short hash of every setting: a cached judge is reused only for identical settings."""
        return hashlib.sha256(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Judge:
    """A trained attribute classifier with its held-out ROC-AUC per attribute and what it learnt from."""

    model: AttributeClassifier
    names: list[str]
    aucs: dict[str, float | None]  # held-out ROC-AUC per attribute (None: one class only in the held-out images)
    trained_on: str
    cached: bool
    # accuracy at the flip-rate threshold on the same images; AUC and accuracy on their reconstructions (judges
    # trained with a run's reconstructions only)
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def score(self, images: np.ndarray) -> np.ndarray:
        """(N, A) probabilities, columns in `names` order, for uint8 images (N, 3, 64, 64)."""
        return self.model.probabilities(to_float(np.asarray(images), next(self.model.parameters()).device))


Reconstruct = Callable[[np.ndarray], np.ndarray]  # uint8 images (N, 3, 64, 64) -> a run's uint8 reconstructions


def load_or_train(dataset: Dataset, settings: ClassifierSettings, cache_dir: str | Path | None = None,
                  reconstruct: Reconstruct | None = None) -> Judge:
    """The cached judge of `dataset` trained with `settings` (see the module docstring), else a freshly trained one,
    which is cached for the next evaluation of any run on the same data set (with `reconstruct`, and
    settings.reconstructions_of naming the run's weights: of the same weights)."""
    if bool(reconstruct) != bool(settings.reconstructions_of):
        raise ValueError("a judge trained with reconstructions needs both `reconstruct` and the weights it names")
    base = cache_path(dataset, settings, cache_dir)
    cached = _load(base, settings)
    if cached is not None:
        return cached
    model = train_classifier(dataset, settings, reconstruct)
    scores = held_out_scores(model, dataset, settings, reconstruct)
    weights = save({k: v.contiguous() for k, v in model.state_dict().items()}, metadata={"format": FORMAT})
    judge = Judge(model, list(settings.attributes), scores.pop("aucs"), trained_on(dataset, bool(reconstruct)),
                  cached=False, scores=scores)
    # Weights first: a JSON without its weights is never left behind, and the hash pairs the two files.
    write_bytes(base.with_suffix(".safetensors"), weights)
    write_json(base.with_suffix(".json"), {"format": FORMAT, "settings": settings.record(),
                                           "weights_sha256": hashlib.sha256(weights).hexdigest(), "aucs": judge.aucs,
                                           "trained_on": judge.trained_on, **scores})
    return judge


def cache_path(dataset: Dataset, settings: ClassifierSettings, cache_dir: str | Path | None = None) -> Path:
    """The cached judge's files without their suffix: `<cache>/attribute-judge/<data set>-<settings key>`."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / FOLDER / f"{dataset.name}-{settings.key()}"


def data_fingerprint(dataset: Dataset, n: int = 16) -> str:
    """A hash of the first `n` training images and all attribute names and their labels for them."""
    index = dataset.indices("train")[:n]
    digest = hashlib.sha256(dataset.images(index).tobytes())
    digest.update(json.dumps([str(a) for a in dataset.attributes.names]).encode())
    digest.update(np.ascontiguousarray(dataset.attributes.values[index]).tobytes())
    return digest.hexdigest()[:16]


def trained_on(dataset: Dataset, reconstructions: bool = False) -> str:
    """One sentence for the report on what the judge learnt from: exact rendered labels or the data set's own, and
    whether the run's reconstructions were among its training images."""
    also = " and this run's reconstructions of them (same labels, shifted and brightened at random)" \
        if reconstructions else ""
    if dataset.is_ground_truth:
        return (f"{dataset.name} training split{also}, rendered from its factors: labels are the renderer's exact "
                "ground truth")
    return f"{dataset.name} training split{also} with the data set's own (human) labels"


def train_classifier(dataset: Dataset, s: ClassifierSettings, reconstruct: Reconstruct | None = None
                     ) -> AttributeClassifier:
    """Multi-label BCE training on random batches of the training split, deterministic for a seed; with
    `reconstruct`, half of every batch is the run's reconstructions and every batch is shifted by up to 2 pixels
    and brightened by up to ±10 % (a judge that must not take a decoder's blur or smudges for evidence)."""
    index = dataset.indices("train")
    if len(index) == 0:
        raise DataError(f"{dataset.name}: the training split is empty; the attribute classifier needs images")
    labels = _labels(dataset, s.attributes)
    torch.manual_seed(s.seed)
    model = AttributeClassifier(len(s.attributes))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    # Rare attributes (CelebA's Eyeglasses: ~6%) would otherwise be learnt as "never".
    positive = labels[index].mean(0).clip(1e-3, 1 - 1e-3)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(np.sqrt((1 - positive) / positive), dtype=torch.float32))
    rng = np.random.default_rng(s.seed)
    model.train()
    for _ in range(s.steps):
        batch = np.sort(rng.choice(index, size=min(s.batch_size, len(index)), replace=False))
        images = dataset.images(batch)
        if reconstruct is not None:
            images = images.copy()  # a cached data set's array is not ours to write
            half = rng.random(len(batch)) < 0.5
            if half.any():
                images[half] = reconstruct(images[half])
        x = to_float(images, "cpu")
        if reconstruct is not None:
            dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
            x = (torch.roll(x, (dy, dx), dims=(2, 3)) * float(rng.uniform(0.9, 1.1))).clamp(0, 1)
        loss = loss_fn(model(x), torch.from_numpy(labels[batch]).float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def held_out_scores(model: AttributeClassifier, dataset: Dataset, s: ClassifierSettings,
                    reconstruct: Reconstruct | None = None) -> dict[str, dict[str, float | None]]:
    """Per attribute, on up to `s.test_images` test-split images: "aucs" (ROC-AUC; None where those are all one
    class) and "accuracy" (at the flip-rate threshold 0.5), and with `reconstruct` the same two on the run's
    reconstructions of those images ("reconstruction_aucs", "reconstruction_accuracy")."""
    index = dataset.indices("test")
    index = np.sort(np.random.default_rng(s.seed).permutation(index)[:s.test_images])
    labels = _labels(dataset, s.attributes)[index]
    images = dataset.images(index)
    shown = {"": images, **({"reconstruction_": reconstruct(images)} if reconstruct is not None and len(index) else {})}
    out = {}
    for prefix, x in shown.items():
        probs = model.probabilities(to_float(x, "cpu")) if len(index) else None
        aucs, accuracy = {}, {}
        for a, name in enumerate(s.attributes):
            two_classes = probs is not None and 0 < labels[:, a].sum() < len(index)
            aucs[name] = float(roc_auc_score(labels[:, a], probs[:, a])) if two_classes else None
            accuracy[name] = None if probs is None else float(((probs[:, a] > 0.5) == labels[:, a]).mean())
        out[f"{prefix}aucs"], out[f"{prefix}accuracy"] = aucs, accuracy
    return out


def _labels(dataset: Dataset, names: tuple[str, ...]) -> np.ndarray:
    return np.stack([dataset.attributes.column(n) for n in names], axis=1).astype(np.float32)


def _load(base: Path, settings: ClassifierSettings) -> Judge | None:
    """The cached judge; None when there is none, and None with a warning when its files are damaged, do not pair
    or were trained with other settings (derived data: the caller trains it again and overwrites them)."""
    info_path, weights_path = base.with_suffix(".json"), base.with_suffix(".safetensors")
    if not info_path.exists() and not weights_path.exists():
        return None
    try:
        info = read_json(info_path, INFO_SCHEMA, max_bytes=1 << 20, fix="it is replaced")
        if info["format"] != FORMAT or info["settings"] != settings.record():
            raise ValueError(f"{info_path}: recorded for other settings")
        if weights_path.stat().st_size > MAX_WEIGHTS_BYTES:
            raise ValueError(f"{weights_path}: larger than {MAX_WEIGHTS_BYTES:,} bytes")
        data = weights_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != info["weights_sha256"]:
            raise ValueError(f"{weights_path}: does not match the SHA-256 recorded in {info_path.name}")
        model = AttributeClassifier(len(settings.attributes))
        model.load_state_dict(load(data))
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # ValueError: core.fileio's refusals too
        logger.warning("attribute judge cache refused, training the judge again: %s", e)
        return None
    scores = {k: info[k] for k in ("accuracy", "reconstruction_aucs", "reconstruction_accuracy") if k in info}
    return Judge(model.eval(), list(settings.attributes), info["aucs"], info["trained_on"], cached=True,
                 scores=scores)
