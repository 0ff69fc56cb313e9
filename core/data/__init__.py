"""Data sets by name. Every loader returns a `Dataset` (see base.py)."""
from __future__ import annotations

from core.config import DataConfig
from core.data.base import Attributes, DataError, Dataset, GroundTruthData

__all__ = ["Attributes", "DataError", "Dataset", "GroundTruthData", "load_dataset"]


def load_dataset(config: DataConfig, progress: bool = True, cache_dir: str | None = None) -> Dataset:
    """Build the data set a run config names. Imports lazily: each loader pulls in only what it needs."""
    name = config.dataset
    if name == "synthfaces":
        from core.data.synthfaces import SynthFaces

        return SynthFaces(seed=config.seed)
    if name == "dsprites":
        from core.data.dsprites import DSprites

        return DSprites(seed=config.seed)
    if config.root is None:
        raise DataError(f"data set {name!r} reads images from a folder: pass --data-root PATH")
    if name == "celeba":
        from core.data.celeba import CelebA

        return CelebA(config.root, cache_dir=cache_dir, progress=progress, seed=config.seed)
    if name == "lfw":
        from core.data.lfw import LFW

        return LFW(config.root, cache_dir=cache_dir, progress=progress)
    if name == "folder":
        from core.data.folder import ImageFolder

        return ImageFolder(config.root, attributes_csv=config.attributes_csv, cache_dir=cache_dir, progress=progress,
                           seed=config.seed)
    raise DataError(f"unknown data set {name!r}")
