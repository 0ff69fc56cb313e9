"""Batched encoding of a data set with a trained run: latent means for the dashboard and metrics."""
from __future__ import annotations

import zipfile
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


def load_or_encode(run: Run, split: str = "test", limit: int | None = None,
                   dataset: Dataset | None = None, device: str = "cpu") -> dict[str, np.ndarray]:
    """The run's encodings of `split` (at most `limit` images), computed once and then read from the run
    folder; recomputed when the checkpoint is newer than the file."""
    path = encodings_path(run, split, limit)
    if path.is_file() and path.stat().st_mtime >= run.checkpoint_path.stat().st_mtime:
        try:
            return read_encodings(path)
        except UNREADABLE:
            pass  # a damaged (or pickled, hence refused) cache file: compute it again
    encode_run(run, split, limit, device=device, dataset=dataset)
    return read_encodings(path)


def read_encodings(path: Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz written by encode_run; pickled content is refused (allow_pickle=False)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def encode_run(run: Run, split: str = "test", limit: int | None = None, batch_size: int = INFERENCE_BATCH,
               device: str = "auto", dataset: Dataset | None = None) -> Path:
    """Encode one split of the run's data set into RUN/encodings/<dataset>-<split>[-<limit>].npz (no pickles)."""
    config = run.config
    model = inference_layout(run.load_model(pick_device(device)))
    dataset = dataset if dataset is not None else load_dataset(config.data)
    index = dataset.indices(split)
    if limit is not None and limit < len(index):
        index = np.sort(np.random.default_rng(0).choice(index, size=limit, replace=False))
    mu, logvar = encode(model, dataset, index, batch_size)
    arrays = {"index": index, "mu": mu, "logvar": logvar,
              "attributes": dataset.attributes.values[index],
              "attribute_names": np.array(dataset.attributes.names, dtype=str)}
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
