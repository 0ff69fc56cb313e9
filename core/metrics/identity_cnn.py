"""The end-to-end baseline of face verification, and the identity distance of edited faces.

The baseline is an identity classifier: a small CNN trained with softmax cross-entropy over the *training
people* (core.metrics.verification_pairs.split_people) on their training-split images, whose penultimate layer
(an embedding as wide as the latent code it is compared with) is compared by cosine. A classifier rather than a
siamese / contrastive net because it needs no pair or triplet mining, trains stably in a few hundred CPU steps,
and is the classic verification baseline (DeepFace, DeepID); its embedding goes through exactly the same pair
protocol and scores as the latent codes.

It is trained with a fixed seed and cached, keyed by everything it depends on (data fingerprint, training and
held-out people, width, steps, batch, learning rate, seed), under $LATENTLAB_CACHE/identity-cnn/ (default
~/.cache/latentlab): one CNN serves every run on the same data set, and run folders stay small.

`identity_distance(judge, images_a, images_b)` says "still the same person?" on its embedding: the cosine distance,
rescaled so that 0 is the typical (median) distance of two images of one held-out person and 1 the typical
distance of two held-out people.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from sklearn.metrics import roc_auc_score
from torch import nn

from core.data import DataError, Dataset
from core.data.cache import default_cache_dir
from core.device import to_float
from core.fileio import write_bytes, write_json
from core.metrics.classifier import data_fingerprint
from core.metrics.verification_pairs import PeopleSplit, person_ids, sample_pairs, split_people

FORMAT = "latentlab-identity-cnn-1"
FOLDER = "identity-cnn"
WIDTHS = (16, 32, 64, 128)  # ~7 M multiply-adds an image: 1,500 steps of 64 take ~2 min on 2 CPU cores
# 1,500 steps with shifts: on the CelebA sample (826 training people x 5 images) the held-out AUC of an unshifted CNN
# peaks near 800 steps and falls as it memorises the people; with shifts it plateaus from ~1,000 to 2,000 steps
STEPS, FAST_STEPS, BATCH, SHIFT = 1500, 300, 64, 4
CALIBRATION_PAIRS = 500  # held-out same-person pairs, and as many different-person ones, for the medians


class IdentityCNN(nn.Module):
    """Four stride-2 convolutions (64 -> 4 pixels), a linear embedding with batch norm, and a softmax head over
    the training people; `embed` is the penultimate layer."""

    def __init__(self, num_people: int, embedding_dim: int):
        super().__init__()
        layers, channels = [], 3
        for width in WIDTHS:
            layers += [nn.Conv2d(channels, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * 16, embedding_dim),
                                      nn.BatchNorm1d(embedding_dim))
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(embedding_dim, num_people))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, people) logits for float images in [0, 1] (N, 3, 64, 64)."""
        return self.head(self.features(x))


@dataclass(frozen=True)
class IdentityCNNSettings:
    """Everything the CNN depends on: a cached one is reused only when all of it matches."""

    dataset: str
    data_fingerprint: str  # core.metrics.classifier.data_fingerprint: a re-rendered or edited data set retrains
    people_fingerprint: str  # of the training and held-out images and their people (so also of the split)
    embedding_dim: int
    steps: int = STEPS
    batch_size: int = BATCH
    lr: float = 2e-3
    shift: int = SHIFT  # random translation, pixels (edges replicated), with random horizontal flips
    seed: int = 0

    def key(self) -> str:
        """A short hash of every setting: the baseline's cache is reused only for identical settings."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class IdentityJudge:
    """A trained identity CNN, the typical held-out distances that normalise `identity_distance`, and its record."""

    model: IdentityCNN
    settings: IdentityCNNSettings
    same_distance: float  # median cosine distance of two images of one held-out person
    different_distance: float  # median cosine distance of images of two held-out people
    info: dict  # what the cache's JSON holds: settings, calibration, people counts, training accuracy, seconds
    cached: bool

    @torch.inference_mode()
    def embed(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, embedding_dim) float32 embeddings of uint8 images (N, 3, 64, 64) (or float ones in [0, 1])."""
        self.model.eval()
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(images), batch_size):
            chunk = images[i:i + batch_size]
            x = (to_float(np.asarray(chunk), device) if _is_uint8(chunk)
                 else torch.as_tensor(chunk, device=device).float())
            out.append(self.model.features(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.settings.embedding_dim), np.float32)


def identity_distance(judge: IdentityJudge, images_a, images_b) -> np.ndarray:
    """(N,) "still the same person?" of image pairs (a[i], b[i]) on the baseline CNN's embedding: cosine distance
    rescaled so that 0 is the typical same-person and 1 the typical different-person distance of held-out people
    (medians). Below ~0.5 reads as "same person"; it can fall below 0 or exceed 1. Images are uint8 (N, 3, 64, 64)
    arrays or float ones in [0, 1] (decoded faces). How far to trust it: judge.info["calibration"]["auc"], the
    CNN's ROC-AUC on those held-out pairs (0.5: it cannot tell the people apart and the scale means nothing)."""
    if len(images_a) != len(images_b):
        raise ValueError(f"identity_distance compares pairs: got {len(images_a)} and {len(images_b)} images")
    return embedding_distance(judge, judge.embed(images_a), judge.embed(images_b))


def embedding_distance(judge: IdentityJudge, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
    """identity_distance of pairs already embedded by `judge` (so an image compared with many is embedded once)."""
    cos = np.einsum("ij,ij->i", ea, eb) / np.maximum(np.linalg.norm(ea, axis=1) * np.linalg.norm(eb, axis=1), 1e-12)
    return ((1 - cos) - judge.same_distance) / max(judge.different_distance - judge.same_distance, 1e-6)


def identity_judge(dataset: Dataset, embedding_dim: int = 64, fast: bool = False, steps: int | None = None,
                   batch_size: int = BATCH, seed: int = 0, people: PeopleSplit | None = None,
                   device: str | torch.device = "cpu", cache_dir: str | Path | None = None) -> IdentityJudge:
    """The baseline CNN of `dataset` (trained once, then cached): the entry point for judging whether edited faces
    keep their identity. It trains on the training-split images of the training people of `people` (default: the
    verification protocol's split_people(..., seed)) and is calibrated on images of the held-out people, none of
    which it has seen. `steps` defaults to STEPS (FAST_STEPS when `fast`)."""
    persons = person_ids(dataset)
    if persons is None:
        raise DataError(f"{dataset.name} has no person identities, so no identity CNN can be trained on it")
    people = people if people is not None else split_people(persons, dataset.split, seed)
    train = dataset.indices("train")
    train = train[np.isin(persons[train], people.training_people)]
    heldout = np.flatnonzero(np.isin(persons, people.heldout_people))
    steps = steps if steps is not None else (FAST_STEPS if fast else STEPS)
    return load_or_train(dataset, train, persons[train], heldout, persons[heldout], embedding_dim, steps=steps,
                         batch_size=batch_size, seed=seed, device=device, cache_dir=cache_dir)


def load_or_train(dataset: Dataset, train_index: np.ndarray, train_persons: np.ndarray, heldout_index: np.ndarray,
                  heldout_persons: np.ndarray, embedding_dim: int, steps: int = STEPS, batch_size: int = BATCH,
                  seed: int = 0, device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                  calibration_pairs: int = CALIBRATION_PAIRS) -> IdentityJudge:
    """The cached CNN trained on images `train_index` (people `train_persons`) with these settings, else a freshly
    trained one, calibrated on held-out pairs and cached."""
    if np.isin(heldout_persons, train_persons).any():
        raise ValueError("the identity CNN's held-out people must not be among its training people")
    digest = hashlib.sha256(np.ascontiguousarray(train_index, np.int64).tobytes())
    for array in (train_persons, heldout_index, heldout_persons):
        digest.update(np.ascontiguousarray(array, np.int64).tobytes())
    settings = IdentityCNNSettings(dataset.name, data_fingerprint(dataset),
                                   digest.hexdigest()[:16], embedding_dim, steps, batch_size, seed=seed)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    base = folder / FOLDER / f"{dataset.name}-{settings.key()}"
    if (judge := _load(base, settings, device)) is not None:
        return judge
    start = time.perf_counter()
    people, labels = np.unique(train_persons, return_inverse=True)
    model, accuracy = train_cnn(dataset, train_index, labels, len(people), settings, device)
    judge = IdentityJudge(model, settings, 0.0, 1.0, {}, cached=False)
    i, j, same = sample_pairs(heldout_persons, calibration_pairs, np.random.default_rng([seed, 17]))
    images = dataset.images(heldout_index[np.r_[i, j]])
    distance = identity_distance(judge, images[:len(i)], images[len(i):])  # raw cosine distance (0 and 1 above)
    judge.same_distance, judge.different_distance = float(np.median(distance[same])), float(np.median(distance[~same]))
    separation = float(roc_auc_score(same, -distance))  # how far to trust the scale: 0.5 = it cannot tell people apart
    judge.info = {"format": FORMAT, "settings": asdict(settings), "training_people": len(people),
                  "training_images": len(train_index), "heldout_people": len(np.unique(heldout_persons)),
                  "calibration": {"same": judge.same_distance, "different": judge.different_distance,
                                  "pairs_each": int(same.sum()), "auc": separation},
                  "train_accuracy_last_100_steps": accuracy, "seconds": round(time.perf_counter() - start, 1),
                  "kind": "identity classifier (softmax over training people), penultimate-layer embedding"}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(base.with_suffix(".safetensors"), save(state, metadata={"format": FORMAT}))
    write_json(base.with_suffix(".json"), {**judge.info, "num_people": len(people)})
    return judge


def train_cnn(dataset: Dataset, index: np.ndarray, labels: np.ndarray, num_people: int,
              s: IdentityCNNSettings, device: str | torch.device = "cpu") -> tuple[IdentityCNN, float]:
    """Softmax training on random batches, each image flipped horizontally at random and shifted by up to `s.shift`
    pixels; deterministic for a seed on the CPU. Returns the model and its training accuracy over the last 100
    steps."""
    if len(index) < 2 or num_people < 2:
        raise DataError(f"{dataset.name}: the identity CNN needs images of at least 2 training people")
    torch.manual_seed(s.seed)
    model = IdentityCNN(num_people, s.embedding_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    rng = np.random.default_rng([s.seed, 19])
    correct = []
    model.train()
    for _ in range(s.steps):
        rows = np.sort(rng.choice(len(index), size=min(s.batch_size, len(index)), replace=False))
        x = to_float(dataset.images(index[rows]), device)
        flip = torch.from_numpy(rng.random(len(rows)) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if s.shift:
            padded = nn.functional.pad(x, (s.shift,) * 4, mode="replicate")
            dx, dy = rng.integers(0, 2 * s.shift + 1, (2, len(rows)))
            x = torch.stack([padded[i, :, y:y + x.shape[2], z:z + x.shape[3]]
                             for i, (y, z) in enumerate(zip(dy.tolist(), dx.tolist()))])
        y = torch.from_numpy(labels[rows]).to(x.device)
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        correct.append((logits.argmax(1) == y).float().mean().item())
    return model.eval(), float(np.mean(correct[-100:])) if correct else 0.0


def _is_uint8(images) -> bool:
    return (images.dtype == np.uint8) if isinstance(images, np.ndarray) else (images.dtype == torch.uint8)


def _load(base: Path, settings: IdentityCNNSettings, device) -> IdentityJudge | None:
    """The cached CNN, or None when absent, unreadable (derived data: retrain) or trained differently."""
    try:
        info = json.loads(base.with_suffix(".json").read_text())
        if info.get("format") != FORMAT or info.get("settings") != json.loads(json.dumps(asdict(settings))):
            return None
        model = IdentityCNN(int(info["num_people"]), settings.embedding_dim)
        model.load_state_dict(load_file(str(base.with_suffix(".safetensors"))))
        same, different = float(info["calibration"]["same"]), float(info["calibration"]["different"])
    except Exception:  # missing, garbled JSON or safetensors, wrong shapes: all mean "train it again"
        return None
    info.pop("num_people", None)
    return IdentityJudge(model.to(device).eval(), settings, same, different, info, cached=True)
