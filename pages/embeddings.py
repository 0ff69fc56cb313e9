"""Embeddings: PCA and UMAP maps of the latent means of many faces, coloured by an attribute, a ground-truth
factor or a latent dim; box/lasso-select points to see their faces; export for the TensorFlow Embedding Projector."""
import shlex

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from core.explore.colouring import (Colouring, colour_options, colouring, plot_order, projector_tsv, selected_rows,
                                    selection_summary, thumbnail_rows)
from core.explore.encode import HELD_OUT
from core.explore.projection import EmbedError, UmapParams, pca_2d
from core.explore.umap_job import (UmapJob, cached_encodings, load_encodings as cached_or_fresh_encodings, start_umap,
                                   umap_status)
from core.runs.labels import LabelError, dim_name, load_labels
from core.runs.folder import Run
from dashboard.charts import chart_text
from dashboard.common import load_data_or_none, load_encodings, pick_run, show_grid
from dashboard.text import code, md, plain, say, user_errors

SPLITS = ["test", "val", "train", "all"]
COUNTS = {"1k": 1000, "2k": 2000, "5k": 5000, "10k": 10000, "20k": 20000, "all": None}
BINARY_COLOURS = ("#9aa5b1", "#e4572e")  # "without" recedes, "with" stands out
LEVEL_COLOURS = qualitative.Plotly + qualitative.Dark2


def count_text(limit: int | None) -> str:
    return "all" if limit is None else f"{limit:,}"


def option_text(option: tuple[str, int], encodings: dict, labels: dict) -> str:
    kind, i = option
    if kind == "attribute":
        return f"attribute · {encodings['attribute_names'][i]}"
    if kind == "factor":
        return f"factor · {encodings['factor_names'][i]}"
    if kind == "dim":
        return dim_name(i, labels)
    return "nothing"


def marker_for(colour: Colouring, order: np.ndarray, n: int) -> dict:
    marker = dict(size=5 if n <= 5000 else 3, opacity=0.8)
    if colour.kind == "none":
        return {**marker, "color": LEVEL_COLOURS[0]}
    values = colour.values[order]
    if colour.kind == "continuous":
        return {**marker, "color": values, "colorscale": "RdBu_r" if colour.diverging else "Viridis",
                **({"cmid": 0.0} if colour.diverging else {}), "colorbar": dict(title=chart_text(colour.title))}
    k = len(colour.ticks)
    palette = BINARY_COLOURS if k == 2 else LEVEL_COLOURS
    steps = [(edge, palette[i % len(palette)]) for i in range(k) for edge in (i / k, (i + 1) / k)]
    return {**marker, "color": values, "colorscale": steps, "cmin": -0.5, "cmax": k - 0.5,
            "colorbar": dict(title=chart_text(colour.title), tickvals=list(range(k)),
                             ticktext=[chart_text(tick) for tick in colour.ticks])}


def map_figure(coords: np.ndarray, colour: Colouring, index: np.ndarray, axes: tuple[str, str],
               order: np.ndarray) -> go.Figure:
    """ONE WebGL trace, points in `order`: the chart's point indices are positions in `order`."""
    n = len(coords)
    hover = "image #%{customdata}" + (f"<br>{chart_text(colour.title)}: %{{marker.color:.3g}}"
                                      if colour.kind != "none" else "")
    trace = go.Scattergl(x=coords[order, 0], y=coords[order, 1], mode="markers", customdata=index[order],
                         marker=marker_for(colour, order, n), hovertemplate=hover + "<extra></extra>")
    figure = go.Figure(trace)
    figure.update_layout(height=620, margin=dict(l=10, r=10, t=30, b=10), dragmode="lasso",
                         xaxis_title=axes[0], yaxis_title=axes[1])
    return figure


@st.cache_data(max_entries=8, show_spinner=False)
def pca_of(path: str, stamp: float, split: str, limit: int | None, _mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keyed on the run, its checkpoint and the subset (which fix `_mu`): a selection rerun is free."""
    return pca_2d(_mu)


@st.fragment(run_every=1.0)
def umap_progress(run: Run, split: str, limit: int | None, params: UmapParams, index: np.ndarray) -> None:
    """Polls the worker's files; redraws the whole page once the job is no longer running."""
    job = umap_status(run, split, limit, params, index)
    if job is None or job.state != "running":
        st.rerun()
    minutes, seconds = divmod(int(job.elapsed), 60)
    stage = job.stage + (f" {job.fraction:.0%}" if job.fraction is not None else "")
    st.progress(job.fraction or 0.0, text=md("Computing UMAP of {n:,} points: {stage} · {minutes}:{seconds:02d} "
                                             "elapsed", n=len(index), stage=stage, minutes=minutes, seconds=seconds))
    say("caption", "In a background process (pid {pid}), saved in the run folder when done: other pages stay usable, "
                   "and a reload or another browser picks up the same job. PCA is shown meanwhile.", pid=job.pid)


def offer_umap(job: UmapJob | None, run: Run, split: str, limit: int | None, params: UmapParams,
               index: np.ndarray) -> None:
    """A button, not an automatic start: clicking through subsets must not pile up workers on a laptop."""
    if job is None:
        st.info(f"No UMAP of these {len(index):,} points with these parameters yet. It runs in the background "
                "(seconds for 10k points; the first UMAP on a machine also compiles its code, about half a minute) "
                "and is saved in the run folder; PCA is shown until it is ready.")
    else:
        say("error", "UMAP failed: {error}", error=job.error)
    if st.button("Compute UMAP" if job is None else "Try again", type="primary", key="emb_start"):
        with user_errors():
            start_umap(run, split, limit, params, index)
        st.rerun()


st.title("Embeddings")
st.caption("Every point is one face, placed by its latent means (the encoder's μ). PCA shows the two directions "
           "of largest spread, instantly; UMAP keeps neighbours together and shows clusters (computed once per run, "
           "subset and parameters, in the background). Select points with box or lasso to see their faces.")

run = pick_run()
if run is None:
    st.stop()
with user_errors():
    dataset_name = run.config.data.dataset
    cached = cached_encodings(run)
data = load_data_or_none(run, "the face view of selected points (the map itself uses the encodings cached in the "
                               "run folder)" if cached else
                         md("the map (embeddings need the images encoded, and the run folder holds no cached "
                            "encodings: run {command} where the data is, then copy its `encodings/` folder into the "
                            "run folder here)", command=code(f"python -m core encode {shlex.quote(run.name)}")))
if data is None and not cached:
    st.stop()

left, middle, right = st.columns([1, 1, 2])
if data is not None:
    split = left.selectbox("Split", SPLITS, key="emb_split", index=SPLITS.index(HELD_OUT[0]))
    size = len(data.indices(split))
    # the default is what `python -m core train` encodes when a run finishes: the first map reads, not encodes
    count = middle.selectbox("Images", list(COUNTS), index=list(COUNTS.values()).index(HELD_OUT[1]), key="emb_count",
                             help=f"the {split} split holds {size:,} images")
    limit = COUNTS[count] if COUNTS[count] is not None and COUNTS[count] < size else None
    encodings = load_encodings(run, split, limit, data)
else:
    split, limit = left.selectbox("Cached encodings", cached, key="emb_cached",
                                  format_func=lambda c: f"{c[0]} · {count_text(c[1])} images")
    with user_errors():
        encodings = cached_or_fresh_encodings(run, split, limit)
if len(encodings["mu"]) == 0:
    say("warning", "The {split} split of {dataset} holds no images: choose another split.", split=split,
        dataset=dataset_name)
    st.stop()
method = right.radio("Map", ["PCA", "UMAP"], horizontal=True, key="emb_method")

try:
    labels = load_labels(run)
except LabelError as e:
    say("warning", "{error}. Dims are shown by number.", error=e)
    labels = {}

options = colour_options(encodings)
attribute_names = list(encodings["attribute_names"])
start = options.index(("attribute", attribute_names.index("Smiling"))) if "Smiling" in attribute_names else 0
colour_by = st.selectbox("Colour by", options, index=start, key="emb_colour",
                         format_func=lambda o: option_text(o, encodings, labels))
colour = colouring(encodings, colour_by, lambda d: dim_name(d, labels), dataset_name)

mu, index = encodings["mu"], encodings["index"]
shown, coords = "PCA", None
if method == "UMAP":
    c1, c2, c3 = st.columns(3)
    n_neighbors = c1.number_input("Neighbours", 2, 200, 15, key="emb_nn",
                                  help="larger keeps more global structure, smaller finer clusters")
    min_dist = c2.number_input("Min distance", 0.0, 1.0, 0.1, step=0.05, key="emb_min_dist",
                               help="how tightly points may pack")
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="emb_seed")
    try:
        params = UmapParams(int(n_neighbors), float(min_dist), int(seed))
    except EmbedError as e:
        st.error(plain(e))
        st.stop()
    with user_errors():
        job = umap_status(run, split, limit, params, index)
    if job is not None and job.state == "done":
        shown, coords, axes = "UMAP", job.coords, ("UMAP 1", "UMAP 2")
    elif job is not None and job.state == "running":
        umap_progress(run, split, limit, params, index)
    else:
        offer_umap(job, run, split, limit, params, index)

if coords is None:
    coords, explained = pca_of(str(run.path), run.checkpoint_path.stat().st_mtime, split, limit, mu)
    axes = (f"PC1 ({explained[0]:.0%} of variance)", f"PC2 ({explained[1]:.0%})")
order = plot_order(len(coords))
say("caption", "{shown} of {n:,} {split} images × {dims} latent dims · colour: {colour}", shown=shown, n=len(mu),
    split=split, dims=mu.shape[1], colour=colour.title or "none")
event = st.plotly_chart(map_figure(coords, colour, index, axes, order), on_select="rerun",
                        selection_mode=("box", "lasso"), key=f"emb_map_{run.name}_{split}_{limit}_{shown}")
rows = selected_rows(order, event.selection.point_indices if event else [])

if len(rows):
    st.subheader(f"{len(rows):,} selected")
    summary = selection_summary(encodings, rows)
    if summary:
        st.caption("Sets them apart: " + " · ".join(md("**{name}** {inside:.0%} here vs {overall:.0%} overall",
                                                       name=name, inside=inside, overall=overall)
                                                    for name, inside, overall in summary))
    if data is not None:
        shown_rows = thumbnail_rows(rows)
        with user_errors():
            show_grid(data.images(index[shown_rows]), ncol=12, scale=1,
                      caption=f"{len(shown_rows)} of {len(rows):,} selected faces, spread evenly over the selection")
    else:
        st.info("The faces of selected points need the data set, which is not on this machine.")
else:
    st.caption("Select points with the box or lasso tool (top right of the map) to see their faces.")

with st.expander("Export for the TensorFlow Embedding Projector"):
    st.markdown("Open [projector.tensorflow.org](https://projector.tensorflow.org), click **Load**, and choose the "
                "vectors file (step 1) and the metadata file (step 2) to explore these points in 3-D.")
    stem = f"{run.name}-{split}-{count_text(limit).replace(',', '')}"
    factors = dict(factor_names=list(encodings.get("factor_names", [])), factors=encodings.get("factors"))
    build = lambda: projector_tsv(mu, index, attribute_names, encodings["attributes"],  # noqa: E731
                                  dataset_name=dataset_name, **factors)
    one, two = st.columns(2)
    one.download_button("Vectors (TSV)", lambda: build()[0], f"{stem}-vectors.tsv", "text/tab-separated-values",
                        key="emb_vectors", on_click="ignore")
    two.download_button("Metadata (TSV)", lambda: build()[1], f"{stem}-metadata.tsv", "text/tab-separated-values",
                        key="emb_metadata", on_click="ignore")
