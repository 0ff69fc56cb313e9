"""UI helpers shared by every page: run picker, cached model and data loading, image grids, error display.

Pages draw; `core` computes. Nothing here does tensor math beyond handing arrays to `core` and images to Streamlit.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import streamlit as st

from core.config import ConfigError, DataConfig
from core.data import DataError, Dataset, load_dataset
from core.images import grid
from core.models.vae import VAE
from core.runs import Run, RunError, list_runs

USER_ERRORS = (ConfigError, DataError, RunError, OSError)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show bad input and broken files as a message on the page instead of a traceback."""
    try:
        yield
    except USER_ERRORS as e:
        st.error(str(e))
        st.stop()


def pick_run(key: str = "run", finished_only: bool = True) -> Run | None:
    """Sidebar run picker shared across pages (the choice survives page switches and reloads via the URL)."""
    runs = [r for r in list_runs() if r.checkpoint_path.is_file() or not finished_only]
    if not runs:
        st.info("No trained runs yet: train one on the **Train** page, or copy a run folder into `checkpoints/`.")
        return None
    names = [r.name for r in runs]
    wanted = st.query_params.get("run", st.session_state.get("run_name"))
    index = names.index(wanted) if wanted in names else 0
    name = st.sidebar.selectbox("Run", names, index=index, key=f"{key}_picker")
    st.session_state["run_name"] = name
    st.query_params["run"] = name
    return runs[names.index(name)]


def _stamp(run: Run) -> float:
    """Changes whenever the checkpoint is rewritten, so caches keyed on it never serve stale weights."""
    return run.checkpoint_path.stat().st_mtime


@st.cache_resource(max_entries=4, show_spinner="Loading model ...")
def _model(path: str, stamp: float) -> VAE:
    return Run(path).load_model("cpu")


def load_model(run: Run) -> VAE:
    with user_errors():
        return _model(str(run.path), _stamp(run))


@st.cache_resource(max_entries=4, show_spinner="Opening data set ...")
def _dataset(dataset: str, root: str | None, attributes_csv: str | None, seed: int) -> Dataset:
    return load_dataset(DataConfig(dataset, root, attributes_csv, seed), progress=False)


def load_data(run: Run) -> Dataset:
    """The run's data set. A run trained elsewhere may name a data root that is not on this machine."""
    with user_errors():
        data = run.config.data
        if data.root is not None and not Path(data.root).is_dir():
            raise DataError(f"run {run.name!r} was trained on {data.dataset} at {data.root}, which is not on this "
                            "machine: copy the data there, or explore a run trained on built-in data")
        return _dataset(data.dataset, data.root, data.attributes_csv, data.seed)


def show_grid(images: np.ndarray, ncol: int, caption: str | None = None, scale: int = 2) -> None:
    """uint8 or [0, 1] float images (N, 3, H, W) as one picture."""
    picture = grid(images, ncol)
    st.image(picture, caption=caption, width=picture.shape[1] * scale)
