"""Batched encoding of a data set with a trained run: latent means for the dashboard and metrics."""
from __future__ import annotations

import hashlib
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from core.data import Dataset, load_dataset
from core.explore.condition import face_conditions
from core.fileio import atomic_path
from core.models.vae import VAE
from core.runs.folder import Run
from core.device import INFERENCE_BATCH, inference_layout, pick_device, to_float

# what np.load raises for a damaged, truncated or pickled (hence refused) .npz
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
# (split, limit) the dashboard's pages encode by default: held-out faces behind Traversals' ranges and suggestions,
# Arithmetic's AUCs and Embeddings' first map; training faces behind Arithmetic's ΔZ. `python -m core train` writes
# them when a run finishes, so a run's first visit reads codes instead of waiting for the encoder.
HELD_OUT = ("test", 2000)
EDIT_SOURCE = ("train", 5000)
DASHBOARD_ENCODINGS = (HELD_OUT, EDIT_SOURCE)


@torch.inference_mode()
def encode(model: VAE, dataset: Dataset, index: np.ndarray,
           batch_size: int = INFERENCE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Posterior (mu, logvar) for dataset images `index`, float32 numpy (len(index), latent_dim). A conditional
    model (cvae) encodes each image under its own attributes, so the code holds what they do not say."""
    device = next(model.parameters()).device
    mus, logvars = [], []
    for start in range(0, len(index), batch_size):
        chunk = index[start:start + batch_size]
        given = face_conditions(model, dataset, chunk)
        mu, logvar = model.encode(to_float(dataset.images(chunk), device), **({} if given is None else {"y": given}))
        mus.append(mu.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    empty = np.zeros((0, model.latent_dim), np.float32)
    return (np.concatenate(mus) if mus else empty), (np.concatenate(logvars) if logvars else empty)


def encodings_path(run: Run, split: str, limit: int | None) -> Path:
    """Where encode_run stores a split's encodings: RUN/encodings/<dataset>-<split>[-<limit>].npz."""
    suffix = f"-{limit}" if limit is not None else ""
    return run.path / "encodings" / f"{run.config.data.dataset}-{split}{suffix}.npz"


@lru_cache(maxsize=64)
def _digest(path: Path, mtime_ns: int, size: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


def checkpoint_digest(run: Run) -> str:
    """SHA-256 of the run's checkpoint file: which weights an encodings file was computed with. File times cannot
    say it: a clone or a copy gives every file the time it was written there."""
    stat = run.checkpoint_path.stat()
    return _digest(run.checkpoint_path, stat.st_mtime_ns, stat.st_size)


def _fresh(run: Run, path: Path) -> dict[str, np.ndarray] | None:
    """The encodings at `path` if they belong to the run's current checkpoint, else None. A file with no
    fingerprint (written before they were recorded, or by hand) counts when it is newer than the checkpoint."""
    if not path.is_file():
        return None
    try:
        encodings, recorded = _read(path)
    except UNREADABLE:
        return None  # a damaged (or pickled, hence refused) cache file: compute it again
    if recorded is not None:
        return encodings if recorded == checkpoint_digest(run) else None
    return encodings if path.stat().st_mtime >= run.checkpoint_path.stat().st_mtime else None


def load_or_encode(run: Run, split: str = "test", limit: int | None = None,
                   dataset: Dataset | None = None, device: str = "cpu") -> dict[str, np.ndarray]:
    """The run's encodings of `split` (at most `limit` images), computed once and then read from the run
    folder; recomputed when they were computed with other weights than the checkpoint's."""
    path = encodings_path(run, split, limit)
    if (found := _fresh(run, path)) is not None:
        return found
    encode_run(run, split, limit, device=device, dataset=dataset)
    return read_encodings(path)


def prepare_dashboard_encodings(run: Run, dataset: Dataset | None = None, device: str = "auto") -> list[Path]:
    """Write the DASHBOARD_ENCODINGS the run lacks (or has for older weights), loading model and data once;
    the paths written."""
    missing = [(split, limit) for split, limit in DASHBOARD_ENCODINGS
               if _fresh(run, encodings_path(run, split, limit)) is None]
    if not missing:
        return []
    model = inference_layout(run.load_model(pick_device(device)))
    dataset = dataset if dataset is not None else load_dataset(run.config.data)
    return [encode_run(run, split, limit, dataset=dataset, model=model) for split, limit in missing]


def read_encodings(path: Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz written by encode_run; pickled content is refused (allow_pickle=False)."""
    return _read(path)[0]


def _read(path: Path) -> tuple[dict[str, np.ndarray], str | None]:
    """An encodings file's arrays, and the fingerprint of the checkpoint they came from (None if not recorded)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    recorded = arrays.pop("checkpoint_sha256", None)
    return arrays, None if recorded is None else str(recorded)


def encode_run(run: Run, split: str = "test", limit: int | None = None, batch_size: int = INFERENCE_BATCH,
               device: str = "auto", dataset: Dataset | None = None, model: VAE | None = None) -> Path:
    """Encode one split of the run's data set into RUN/encodings/<dataset>-<split>[-<limit>].npz (no pickles),
    with the checkpoint's fingerprint. `model`: the run's model, already loaded."""
    config = run.config
    digest = checkpoint_digest(run)  # before loading: weights saved meanwhile must not get these codes
    model = model if model is not None else inference_layout(run.load_model(pick_device(device)))
    dataset = dataset if dataset is not None else load_dataset(config.data)
    index = dataset.indices(split)
    if limit is not None and limit < len(index):
        index = np.sort(np.random.default_rng(0).choice(index, size=limit, replace=False))
    mu, logvar = encode(model, dataset, index, batch_size)
    arrays = {"index": index, "mu": mu, "logvar": logvar,
              "attributes": dataset.attributes.values[index],
              "attribute_names": np.array(dataset.attributes.names, dtype=str),
              "checkpoint_sha256": np.array(digest)}
    if dataset.is_ground_truth:
        arrays["factors"] = dataset.index_to_factors(index)
        arrays["factor_names"] = np.array(dataset.factor_names, dtype=str)
    if dataset.identities is not None:
        arrays["identities"] = dataset.identities[index]
    path = encodings_path(run, split, limit)
    with atomic_path(path, inside=run.path) as tmp:  # never through a linked encodings/ folder
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path
