"""The attribute judge of the edit metrics: a small multi-label CNN trained on a data set's training split.

It is cached in the run folder (RUN/classifier.safetensors, weights only, plus RUN/classifier.json with what
it was trained on and its held-out ROC-AUC per attribute), and retrained whenever its settings differ. On a
ground-truth data set (SynthFaces) every image is rendered from its factors and the labels are the
renderer's exact ground truth, so there the judge learns from perfect labels.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from sklearn.metrics import roc_auc_score
from torch import nn

from core.data import DataError, Dataset
from core.fileio import read_json, write_bytes, write_json
from core.schema import ANY, MapOf, Nullable, Num, Obj, Str
from core.device import to_float

WEIGHTS = "classifier.safetensors"
INFO = "classifier.json"
# classifier.json, read through core.fileio: a file that does not fit means "train the judge again"
INFO_SCHEMA = Obj({"format": Str(100), "settings": ANY, "aucs": MapOf(Nullable(Num(0, 1))), "trained_on": Str(1000)},
                  required=("format", "settings", "aucs", "trained_on"))
FORMAT = "latentlab-classifier-1"


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
    attributes: tuple[str, ...]
    steps: int
    batch_size: int
    test_images: int
    seed: int


@dataclass
class Judge:
    """A trained attribute classifier with its held-out ROC-AUC per attribute and what it learnt from."""

    model: AttributeClassifier
    names: list[str]
    aucs: dict[str, float | None]  # held-out ROC-AUC per attribute (None: one class only in the held-out images)
    trained_on: str
    cached: bool


def load_or_train(run_path: Path, dataset: Dataset, settings: ClassifierSettings) -> Judge:
    """The run folder's cached judge when it was trained with `settings`, else a freshly trained (and cached) one."""
    cached = _load(run_path, settings)
    if cached is not None:
        return cached
    model = train_classifier(dataset, settings)
    aucs = held_out_aucs(model, dataset, settings)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_bytes(run_path / WEIGHTS, save(state, metadata={"format": FORMAT}))
    judge = Judge(model, list(settings.attributes), aucs, trained_on(dataset), cached=False)
    write_json(run_path / INFO, {"format": FORMAT, "settings": asdict(settings), "aucs": aucs,
                                 "trained_on": judge.trained_on})
    return judge


def data_fingerprint(dataset: Dataset, n: int = 16) -> str:
    """A hash of the first `n` training images and all attribute names and their labels for them."""
    index = dataset.indices("train")[:n]
    digest = hashlib.sha256(dataset.images(index).tobytes())
    digest.update(json.dumps([str(a) for a in dataset.attributes.names]).encode())
    digest.update(np.ascontiguousarray(dataset.attributes.values[index]).tobytes())
    return digest.hexdigest()[:16]


def trained_on(dataset: Dataset) -> str:
    """One sentence for the report on what the judge learnt from: exact rendered labels or the data set's own."""
    if dataset.is_ground_truth:
        return (f"{dataset.name} training split, rendered from its factors: labels are the renderer's exact "
                "ground truth")
    return f"{dataset.name} training split with the data set's own (human) labels"


def train_classifier(dataset: Dataset, s: ClassifierSettings) -> AttributeClassifier:
    """Multi-label BCE training on random batches of the training split, deterministic for a seed."""
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
        loss = loss_fn(model(to_float(dataset.images(batch), "cpu")), torch.from_numpy(labels[batch]).float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def held_out_aucs(model: AttributeClassifier, dataset: Dataset, s: ClassifierSettings) -> dict[str, float | None]:
    """ROC-AUC per attribute on up to `s.test_images` test-split images; None where those are all one class."""
    index = dataset.indices("test")
    index = np.sort(np.random.default_rng(s.seed).permutation(index)[:s.test_images])
    if len(index) == 0:
        return {name: None for name in s.attributes}
    probs = model.probabilities(to_float(dataset.images(index), "cpu"))
    labels = _labels(dataset, s.attributes)[index]
    return {name: (float(roc_auc_score(labels[:, a], probs[:, a])) if 0 < labels[:, a].sum() < len(index) else None)
            for a, name in enumerate(s.attributes)}


def _labels(dataset: Dataset, names: tuple[str, ...]) -> np.ndarray:
    return np.stack([dataset.attributes.column(n) for n in names], axis=1).astype(np.float32)


def _load(run_path: Path, settings: ClassifierSettings) -> Judge | None:
    """The cached judge, or None when absent, unreadable (derived data: retrain) or trained differently."""
    try:
        info = read_json(run_path / INFO, INFO_SCHEMA, max_bytes=1 << 20)
        if info.get("format") != FORMAT or info.get("settings") != json.loads(json.dumps(asdict(settings))):
            return None
        model = AttributeClassifier(len(settings.attributes))
        model.load_state_dict(load_file(str(run_path / WEIGHTS)))
    except Exception:  # missing, garbled JSON or safetensors, wrong shapes: all mean "train it again"
        return None
    return Judge(model.eval(), list(settings.attributes), info["aucs"], info["trained_on"], cached=True)
