"""UI helpers shared by the pages that show faces: run picker, cached model and data loading, image grids, background
jobs. Text and errors (plain, md, say, user_errors) are in dashboard/text.py.

Pages draw; `core` computes. Nothing here does tensor math beyond handing arrays to `core` and images to Streamlit.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st

from core.config import ConfigError, DataConfig
from core.data import DataError, Dataset, load_dataset
from core.explore.composite import masked_edit
from core.explore.encode import encode, load_or_encode
from core.explore.generate import decode, parse_indices, sample_indices
from core.explore.suggest import Effect, dim_effects, effect_suggestions
from core.data.images import grid
from core.models.vae import VAE
from core.runs.folder import Run, list_runs
from dashboard.text import USER_ERRORS, Markdown, md, plain, say, user_errors

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


def _open_data(run: Run) -> Dataset:
    data = run.config.data
    if data.root is not None and not Path(data.root).is_dir():
        raise DataError(f"run {run.name!r} was trained on {data.dataset} at {data.root}, which is not on this "
                        "machine: copy the data there, or explore a run trained on built-in data")
    return _dataset(data.dataset, data.root, data.attributes_csv, data.seed)


def load_data(run: Run) -> Dataset:
    """The run's data set. A run trained elsewhere may name a data root that is not on this machine."""
    with user_errors():
        return _open_data(run)


def load_data_or_none(run: Run, needed_for: str) -> Dataset | None:
    """The run's data set, or None after a warning that says what is missing and what it was `needed_for`
    (for pages that still have something to show without data). `needed_for` is Markdown: build any user text
    in it with md()."""
    try:
        return _open_data(run)
    except (DataError, ConfigError, OSError) as e:
        say("warning", "{error}\n\nWithout it, {needed_for} is not available.", error=e,
            needed_for=Markdown(needed_for))
        return None


@st.cache_data(max_entries=8, show_spinner="Encoding faces with the run's model (once; saved in the run folder) ...")
def _encodings(path: str, stamp: float, split: str, limit: int | None, _dataset: Dataset) -> dict[str, np.ndarray]:
    return load_or_encode(Run(path), split, limit, _dataset)


def load_encodings(run: Run, split: str, limit: int | None, dataset: Dataset) -> dict[str, np.ndarray]:
    """The run's latent means of one split (core.encode.load_or_encode), cached per run, checkpoint and limit."""
    with user_errors():
        return _encodings(str(run.path), _stamp(run), split, limit, dataset)


@st.cache_data(max_entries=64, show_spinner=False)
def _face_codes(path: str, stamp: float, index: tuple[int, ...], _dataset: Dataset) -> np.ndarray:
    return encode(_model(path, stamp), _dataset, np.array(index, dtype=np.int64))[0]


def encode_faces(run: Run, dataset: Dataset, index: np.ndarray) -> np.ndarray:
    """Posterior means (len(index), D) of data set faces, cached so a rerun that keeps the faces skips the encoder."""
    with user_errors():
        return _face_codes(str(run.path), _stamp(run), tuple(int(i) for i in index), dataset)


@st.cache_data(max_entries=64, show_spinner=False)
def _decoded(path: str, stamp: float, codes: np.ndarray) -> np.ndarray:
    return decode(_model(path, stamp), codes)


def decode_codes(run: Run, codes: np.ndarray) -> np.ndarray:
    """uint8 images (..., 3, 64, 64) for codes (..., D), cached: a slider that moves one strip redraws only that one."""
    with user_errors():
        return _decoded(str(run.path), _stamp(run), np.ascontiguousarray(codes, dtype=np.float32))


@st.cache_data(max_entries=64, show_spinner=False)
def _masked(path: str, stamp: float, original: np.ndarray, codes: np.ndarray, edited: np.ndarray) -> np.ndarray:
    return masked_edit(_model(path, stamp), original, codes, edited)


def keep_background(run: Run, key: str) -> bool:
    """A toggle, on by default, shown only for a run with a mask head: composite edits over the original photo."""
    if not run.config.arch.mask_head:
        return False
    return st.toggle("Keep the background", True, key=key,
                     help="The model's mask head outlines the person; the edit is drawn inside that outline and the "
                          "original photo everywhere else, so the background never changes.")


def edit_faces(run: Run, original: np.ndarray, codes: np.ndarray, edited: np.ndarray, keep: bool) -> np.ndarray:
    """uint8 edits (n, ..., 3, 64, 64) of codes `edited` (n, ..., D) of faces `original` (n, 3, 64, 64) with codes
    `codes` (n, D): decoded, or with `keep` composited over the originals (core.explore.composite), cached."""
    if not keep:
        return decode_codes(run, edited)
    with user_errors():
        return _masked(str(run.path), _stamp(run), np.ascontiguousarray(original),
                       np.ascontiguousarray(codes, dtype=np.float32), np.ascontiguousarray(edited, dtype=np.float32))


def pick_faces(pool: np.ndarray, size: int, key: str, default_n: int = 4, max_n: int = 16,
               exact: int | None = None) -> np.ndarray:
    """Face chooser: `exact` (or a slider's number of) random faces from `pool`, or data set indices typed by
    hand (checked against `size`, the data set's length). A "New faces" button draws a fresh random set."""
    mode = st.radio("Faces", ["Random", "By index"], horizontal=True, key=f"{key}_mode")
    if mode == "By index":
        text = st.text_input("Data set indices, comma-separated", ", ".join(str(i) for i in pool[:exact or default_n]),
                             key=f"{key}_text")
        with user_errors():
            index = parse_indices(text, size)
            if exact is not None and len(index) != exact:
                raise DataError(f"type exactly {exact} indices (got {len(index)}: {text.strip()!r})")
        return index
    n = exact or st.slider("Number of faces", 1, max_n, default_n, key=f"{key}_n")
    seed_key = f"{key}_seed"
    st.session_state.setdefault(seed_key, 0)
    st.button("New faces", key=f"{key}_new",
              on_click=lambda: st.session_state.update({seed_key: st.session_state[seed_key] + 1}))
    return sample_indices(pool, n, st.session_state[seed_key])


def show_grid(images: np.ndarray, ncol: int, caption: str | None = None, scale: int = 2) -> None:
    """uint8 or [0, 1] float images (N, 3, H, W) as one picture."""
    picture = grid(images, ncol)
    st.image(picture, caption=caption, width=picture.shape[1] * scale, output_format="PNG")  # JPEG blurs 64-px faces


def show_strip(images: np.ndarray, ncol: int, caption: str | None = None, max_width: int = 860) -> None:
    """Like show_grid at 2x, but never wider than `max_width` px, so long strips (many steps or samples per row)
    shrink to fit the page instead of running off its right edge."""
    picture = grid(images, ncol)
    st.image(picture, caption=caption, width=min(2 * picture.shape[1], max_width), output_format="PNG")


def start_background(start: Callable[..., None], run: Run, doing: str, flash_key: str) -> None:
    """Button callback: start a background job on `run` (an evaluation, a verification) and leave the outcome for
    the next rerun in `st.session_state[flash_key]` as (kind, Markdown-safe text)."""
    try:
        start(run, fast=True)
        st.session_state[flash_key] = ("info", md("Started {doing} {name} in the background.", doing=doing,
                                                  name=run.name))
    except USER_ERRORS as e:
        st.session_state[flash_key] = ("error", plain(e))


@st.cache_data(max_entries=16, show_spinner=False)
def _evaluation(path: str, stamp: float) -> dict | None:
    from core.metrics.evaluate import load_eval  # scikit-learn: only for the pages that show an evaluation

    return load_eval(Run(path))


def load_evaluation(run: Run) -> dict | None:
    """The run's eval.json (core.metrics.evaluate.load_eval), read again only when the file changes: a slider's
    rerun does not parse and check it again."""
    from core.metrics.evaluate import FILE

    try:
        stamp = (run.path / FILE).stat().st_mtime
    except OSError:
        stamp = 0.0  # none yet: load_eval says so
    return _evaluation(str(run.path), stamp)


@st.cache_data(max_entries=8, show_spinner="Judging what each dim does to the faces (the attribute judge is trained "
                                            "once per data set, about a minute, then read from its cache) ...")
def _effects(path: str, stamp: float, dims: tuple[int, ...], k: float, _codes: np.ndarray,
             _dataset: Dataset) -> tuple[list[Effect], dict[str, float | None]]:
    from core.metrics import registry  # scikit-learn and the judge: only when asked for

    judge = registry.attribute_judge(Run(path), _dataset)
    model = _model(path, stamp)
    effects = dim_effects(lambda z: decode(model, z), judge.score, _codes, dims, k)
    return effect_suggestions(effects, dims, judge.names, len(_codes)), judge.aucs


def effect_suggestions_for(run: Run, dataset: Dataset, codes: np.ndarray, dims: list[int],
                           k: float) -> tuple[list[Effect], dict[str, float | None]]:
    """Label suggestions from what each of `dims`, set to ±k, does to the decoded faces of `codes`, as the attribute
    judge of `python -m core evaluate --fast` sees it (core.explore.suggest.dim_effects), and its held-out AUCs."""
    with user_errors():
        return _effects(str(run.path), _stamp(run), tuple(int(d) for d in dims), float(k),
                        np.asarray(codes, np.float32), dataset)
