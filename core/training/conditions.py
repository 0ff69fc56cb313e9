"""Conditions of a conditional family (cvae): the data set's binary attributes y, one row per image.

The number of attributes is known only from the data set, so it is written into the run's config
(`arch.cond_dim`) when the run is created: by `core.training.loop.train` before the folder exists, or, for a run
reserved by the Train page (core.runs.jobs.launch, which does not load the data), by the trainer before its first
step. From then on config.json alone rebuilds the network, and a data set with a different attribute count is
refused instead of silently feeding the wrong columns.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from core.config import RunConfig
from core.data import DataError, Dataset
from core.runs.folder import RunError


def condition_rows(dataset: Dataset) -> np.ndarray:
    """Every image's attribute row as float32 (N, A) of 0 / 1, the conditions the feed gathers batches from."""
    return np.ascontiguousarray(dataset.attributes.values, dtype=np.float32)


def condition_mean(dataset: Dataset) -> np.ndarray:
    """(A,) float32 attribute frequencies of the train split: what a conditional model's `y=None` stands for."""
    index = dataset.indices("train")
    values = dataset.attributes.values
    if len(index) == 0:
        return np.full(values.shape[1], 0.5, np.float32)
    return values[index].mean(0).astype(np.float32)


def with_conditions(config: RunConfig, dataset: Dataset) -> RunConfig:
    """`config` with `arch.cond_dim` set to `dataset`'s attribute count (a copy; unchanged for unconditional
    families). DataError when the data set has no attributes; RunError when the config already names another
    count (the run was trained on a data set with other attributes)."""
    if not config.family.conditional:
        return config
    count = int(np.shape(dataset.attributes.values)[1]) if np.ndim(dataset.attributes.values) == 2 else 0
    if count == 0:
        hint = {"lfw": " (LFW's come from lfw_attributes.txt next to the image folders)",
                "folder": " (give a CSV with --attributes-csv)"}.get(config.data.dataset, "")
        raise DataError(f"model {config.model!r} is conditioned on the data set's binary attributes, and "
                        f"{dataset.name} has none{hint}: pick a data set with attributes, or another model")
    if config.arch.cond_dim not in (0, count):
        raise RunError(f"run {config.name!r} was created for {config.arch.cond_dim} attributes, but {dataset.name} "
                       f"now has {count}: train it on the data set it was made for")
    return dataclasses.replace(config, arch=dataclasses.replace(config.arch, cond_dim=count))
