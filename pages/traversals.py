"""Traversals: what every latent dim does to a face, ordered by KL, and hand labels for the dims."""
from typing import NamedTuple

import numpy as np
import streamlit as st

from core.data import DataError
from core.explore.encode import HELD_OUT
from core.explore.umap_job import load_encodings as cached_or_fresh_encodings
from core.explore.generate import prior_codes, sample_indices
from core.runs.labels import DimLabel, LabelError, dim_name, labels_csv, labels_json, load_labels, save_label
from core.runs.folder import Run
from core.explore.suggest import MIN_ABS_R, MIN_CHANGE, NEAR_BEST, Suggestion, attribute_correlations
from core.explore.traverse import (COLLAPSED_NATS, RANGE_MODES, collapsed, decode_grid, dim_ranges, encode_faces,
                                   jpeg_bytes, kl_from_encodings, kl_from_metrics, kl_order, labelled_grid, png_bytes,
                                   traversal_gif, traversal_values, zoom_grid)
from core.explore.traverse import group_title, latent_groups
from dashboard.common import (effect_suggestions_for, load_data_or_none, load_encodings, load_model, pick_faces,
                              pick_run)
from dashboard.text import md, plain, user_errors

SPLIT, LIMIT = HELD_OUT  # held-out images behind data ranges, the KL fallback and label suggestions
EFFECT_FACES, EFFECT_K = 16, 2.0  # faces whose codes each dim is moved in, and how far (prior standard deviations)
FACE_SOURCES = ("Data set image", "Random face from the prior", "Prior mean (z = 0)")


def kl_text(kl: float) -> str:
    return f"{kl:.2f}" if kl >= 0.1 else f"{kl:.3f}"


class Shown(NamedTuple):
    """A picture as drawn (JPEG bytes, so a rerun sends them again without encoding) and as downloaded (the
    read-only array, made a PNG only when the button is clicked)."""

    picture: np.ndarray
    jpeg: bytes


# The pictures are cached as resources, not data: handed out as they are instead of unpickled on every rerun (a 64x9
# grid is ~10 MB of pixels). Nothing changes them (the array is read-only), so sessions can share them. Every key
# is small (codes, ranges, labels: cheap to hash) and holds the checkpoint's mtime, so a new checkpoint redraws.
@st.cache_resource(max_entries=16, show_spinner="Decoding ...")
def grid_picture(path: str, stamp: float, center: np.ndarray, dims: tuple[int, ...], steps: int, lo: np.ndarray,
                 hi: np.ndarray, labels: tuple[str, ...], dimmed: tuple[bool, ...], scale: int) -> Shown:
    """One row per dim of `dims`, each swept from lo to hi around `center`, labelled."""
    images = decode_grid(load_model(Run(path)), traversal_values(center, dims, steps, lo, hi))
    picture = labelled_grid(images, list(labels), dimmed, scale, 170)
    picture.flags.writeable = False
    return Shown(picture, jpeg_bytes(picture))


@st.cache_resource(max_entries=16, show_spinner="Decoding ...")
def zoom_pictures(path: str, stamp: float, centers: np.ndarray, dim: int, steps: int, lo: np.ndarray, hi: np.ndarray,
                  names: tuple[str, ...]) -> tuple[bytes, bytes]:
    """One dim swept on several faces: the labelled picture (JPEG, 128 px tiles) and the animated GIF."""
    zoom = decode_grid(load_model(Run(path)), traversal_values(centers, [dim], steps, lo, hi))[:, 0]
    return jpeg_bytes(zoom_grid(zoom, list(names), lo[dim], hi[dim])), traversal_gif(zoom)


@st.cache_data(max_entries=32, show_spinner=False)
def decoded_center(path: str, stamp: float, center: np.ndarray) -> np.ndarray:
    return decode_grid(load_model(Run(path)), center[None])[0]


@st.cache_data(max_entries=64, show_spinner=False)
def faces(path: str, stamp: float, index: tuple[int, ...], _dataset) -> tuple[np.ndarray, np.ndarray]:
    return encode_faces(load_model(Run(path)), _dataset, index)


@st.cache_data(max_entries=16, show_spinner=False)
def training_kl(path: str, metrics_mtime: float) -> np.ndarray | None:
    """metrics.jsonl of a long run is megabytes: parse it again only when it changes."""
    return kl_from_metrics(Run(path))


@st.cache_data(max_entries=16, show_spinner=False)
def suggestions(mu: np.ndarray, attributes: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, list[Suggestion]]:
    return attribute_correlations(mu, attributes, list(names))


def save(run: Run, dim: int, label: DimLabel, what: str) -> None:
    """Button callback: runs before the rerun, so the page then draws the new label everywhere."""
    try:
        labels = save_label(run, dim, label)
    except (LabelError, OSError) as e:
        st.session_state["trav_flash"] = ("error", md("label not saved: {error}", error=e))
        return
    for field in ("label", "meaningful", "note"):  # let the form show the stored label, not the typed one
        st.session_state.pop(f"trav_{field}_{run.name}_{dim}", None)
    st.session_state["trav_flash"] = ("success", md("{what}: {dim}", what=what, dim=dim_name(dim, labels)))


def save_from_form(run: Run, dim: int) -> None:
    get = lambda field: st.session_state[f"trav_{field}_{run.name}_{dim}"]  # noqa: E731
    save(run, dim, DimLabel(get("label"), get("meaningful"), get("note")), "Saved")


st.title("Traversals")
st.caption("Each row moves one latent dim of the chosen face from low to high and keeps every other dim, so it "
           "shows what that dim does. Rows are ordered by the dim's KL (nats of information it carries); "
           "dims below the collapse threshold carry none and are greyed.")

run = pick_run()
if run is None:
    st.stop()
flash = st.session_state.pop("trav_flash", None)
if flash:
    (st.success if flash[0] == "success" else st.error)(plain(flash[1]))  # Markdown from md(): kept as it is

with user_errors():
    latent_dim = run.config.arch.latent_dim
    labels = load_labels(run)
    stamp = run.checkpoint_path.stat().st_mtime
model = load_model(run)
path = str(run.path)
dataset = load_data_or_none(run, "starting from data set faces, data-based ranges, KL from encodings and label "
                                 "suggestions")
try:
    encodings = (load_encodings(run, SPLIT, LIMIT, dataset) if dataset is not None
                 else cached_or_fresh_encodings(run, SPLIT, LIMIT))
except DataError:
    encodings = None  # load_data_or_none has said what is missing
if encodings is not None and len(encodings["mu"]) < 2:
    st.warning(f"The {SPLIT} split has {len(encodings['mu'])} images: too few for data ranges and suggestions.")
    encodings = None

metrics = run.path / "metrics.jsonl"
kl = training_kl(path, metrics.stat().st_mtime if metrics.is_file() else 0.0)
kl_source = "the last training record in metrics.jsonl"
if kl is None and encodings is not None:
    kl, kl_source = kl_from_encodings(encodings["mu"], encodings["logvar"]), f"{len(encodings['mu']):,} encoded images"

# --- settings -----------------------------------------------------------------------------------------------------
with st.sidebar:
    st.header("Face")
    source = st.radio("Start from", FACE_SOURCES if dataset is not None else FACE_SOURCES[1:], key="trav_source")
    if source == FACE_SOURCES[0]:
        pool = dataset.indices(SPLIT)
        pool = pool if len(pool) else dataset.indices("all")
        index = pick_faces(pool, len(dataset), key="trav_face", exact=1)
        with user_errors():
            mu, image = faces(path, stamp, tuple(int(i) for i in index), dataset)
        center, face_name = mu[0], f"face {int(index[0])}"
    elif source == FACE_SOURCES[1]:
        st.session_state.setdefault("trav_prior_seed", 0)
        st.button("New face", key="trav_prior_new",
                  on_click=lambda: st.session_state.update(trav_prior_seed=st.session_state["trav_prior_seed"] + 1))
        center = prior_codes(latent_dim, 1, st.session_state["trav_prior_seed"])[0]
        face_name, image = f"prior sample {st.session_state['trav_prior_seed']}", None
    else:
        center, face_name, image = np.zeros(latent_dim, np.float32), "prior mean", None
    decoded = decoded_center(path, stamp, center)
    shown = [decoded] if image is None else [image[0], decoded]
    st.image([im.transpose(1, 2, 0) for im in shown], width=96,
             caption=["decoded"] if image is None else [face_name, "reconstruction"])

    st.header("Grid")
    steps = st.slider("Steps", 3, 21, 9, key="trav_steps")
    modes = list(RANGE_MODES) if encodings is not None else ["prior"]
    mode = st.radio("Range", modes, format_func=RANGE_MODES.get, key="trav_mode",
                    help="±k·σ: the same values for every dim. Data min–max and quantiles: each dim from the "
                         f"posterior means of {LIMIT:,} encoded {SPLIT} images, so a dim moves only as far as "
                         "real faces move it.")
    k = st.slider("k (σ of the prior)", 0.5, 6.0, 3.0, 0.5, key="trav_k", disabled=mode != "prior")
    q = st.slider("Lower quantile (%)", 0.0, 20.0, 2.0, 0.5, key="trav_q", disabled=mode != "quantile",
                  help="2 means the 2nd to the 98th percentile")
    threshold = st.number_input("Collapsed below (nats of KL)", 0.0, 10.0, COLLAPSED_NATS, 0.01, format="%.3f",
                                key="trav_threshold")
    hide = st.checkbox("Hide collapsed dims", key="trav_hide")
    scale = st.radio("Tile size", [1, 2], format_func=lambda s: f"{64 * s} px", horizontal=True, key="trav_scale")

if dataset is None and encodings is None:
    st.info("Without the data set: faces come from the prior, ranges are ±k·σ of the prior"
            + (f", KL from {kl_source}" if kl is not None else "") + ", and there are no label suggestions "
            f"(copying RUN/encodings/{run.config.data.dataset}-{SPLIT}-{LIMIT}.npz from the training machine, made "
            f"by `python -m core encode RUN --split {SPLIT} --limit {LIMIT}`, brings ranges and suggestions back).")
elif dataset is None:
    st.info(f"Without the data set: faces come from the prior; data ranges and suggestions use the "
            f"{len(encodings['mu']):,} encoded images saved in the run folder.")
with user_errors():
    lo, hi = dim_ranges(mode, latent_dim, k, encodings["mu"] if encodings is not None else None, q / 100)
if kl is None:
    st.warning("No per-dim KL: metrics.jsonl has no train record with kl_dims and there are no encodings, so dims "
               "are in index order and none is marked collapsed.")
    order, dead = np.arange(latent_dim), np.zeros(latent_dim, bool)
else:
    order, dead = kl_order(kl), collapsed(kl, threshold)
    st.caption(f"{int((~dead).sum())} of {latent_dim} dims active (KL ≥ {threshold:g} nats); KL from {kl_source}.")


def row_label(d: int) -> str:
    kl_part = f"KL {kl_text(kl[d])}" + (" · collapsed" if dead[d] else "") if kl is not None else "KL unknown"
    return f"{dim_name(d, labels)}\n{kl_part}\n{lo[d]:+.2f} … {hi[d]:+.2f}"


# --- the grid -----------------------------------------------------------------------------------------------------
rows = [int(d) for d in order if not (hide and dead[d])]
groups = latent_groups(model)  # one group, or e.g. a VITAE's appearance and perspective codes: one grid each
group_of = {d: name for name, dims in groups.items() for d in dims}
if not rows:
    st.info(f"Every dim is below {threshold:g} nats: untick *Hide collapsed dims* or lower the threshold.")
for name, dims in groups.items() if rows else ():
    split = len(groups) > 1
    group_rows = [d for d in rows if group_of.get(d) == name]
    if split:
        st.subheader(f"{group_title(name)} (dims {dims[0]}–{dims[-1]})" if dims else group_title(name))
    if not group_rows:
        st.caption("Every dim of this code is hidden (collapsed).")
        continue
    drawn = grid_picture(path, stamp, center, tuple(group_rows), steps, lo, hi,
                         tuple(row_label(d) for d in group_rows), tuple(dead[group_rows]), scale)
    # At its own width: a picture wider than Streamlit's default limit would be shrunk and re-encoded every rerun.
    st.image(drawn.jpeg, caption=f"{face_name}{f' · {group_title(name)}' if split else ''}: {len(group_rows)} dims × "
                                 f"{steps} steps ({RANGE_MODES[mode]})", width=drawn.picture.shape[1],
             output_format="JPEG")
    st.download_button("Download grid (PNG)", lambda picture=drawn.picture: png_bytes(picture),
                       f"{run.name}-traversals{f'-{name}' if split else ''}.png", "image/png", on_click="ignore",
                       key=f"trav_png{f'_{name}' if split else ''}")

# --- one dim up close ---------------------------------------------------------------------------------------------
st.header("Zoom into one dim")
fmt = (lambda d: f"{dim_name(d, labels)} (KL {kl_text(kl[d])})") if kl is not None else (lambda d: dim_name(d, labels))
if len(groups) > 1:  # say which code each dim belongs to
    dim_fmt = fmt
    fmt = lambda d: f"{dim_fmt(d)} · {group_of.get(d, '')}"
c1, c2, c3 = st.columns([2, 1, 1])
dim = int(c1.selectbox("Dim", [int(d) for d in order], format_func=fmt, key="trav_zoom_dim"))
zoom_steps = c2.slider("Steps", 5, 31, 15, 2, key="trav_zoom_steps")
n_faces = c3.slider("Faces", 1, 8, 4, key="trav_zoom_faces")
if dataset is not None:
    others = sample_indices(pool if source == FACE_SOURCES[0] else dataset.indices("all"), n_faces - 1, seed=1)
    others_mu = faces(path, stamp, tuple(int(i) for i in others), dataset)[0]
    names = [face_name] + [f"face {int(i)}" for i in others]
else:
    others_mu = prior_codes(latent_dim, n_faces - 1, seed=1_000 + st.session_state.get("trav_prior_seed", 0))
    names = [face_name] + [f"prior sample {i + 1}" for i in range(n_faces - 1)]
centers = np.concatenate([center[None], others_mu])[:n_faces]
zoom, gif = zoom_pictures(path, stamp, centers, dim, zoom_steps, lo, hi, tuple(names[:len(centers)]))
st.image(zoom, caption=md("{dim} from {lo:+.2f} to {hi:+.2f}, {steps} steps", dim=dim_name(dim, labels), lo=lo[dim],
                          hi=hi[dim], steps=zoom_steps), output_format="JPEG")
st.image(gif, caption=md("{dim}, forward and back", dim=dim_name(dim, labels)))
st.download_button("Download GIF", gif, f"{run.name}-z{dim}.gif", "image/gif", on_click="ignore", key="trav_gif")

# --- labelling ----------------------------------------------------------------------------------------------------
r_matrix, suggested = (suggestions(encodings["mu"], encodings["attributes"],
                                   tuple(str(n) for n in encodings["attribute_names"]))
                       if encodings is not None else (None, []))
# A collapsed dim's posterior mean can still correlate with an attribute, but the decoder ignores it: no label.
suggested = [s for s in suggested if not dead[s.dim]]
by_dim = {s.dim: s for s in suggested}
current = labels.get(dim, DimLabel())
with st.form(f"trav_form_{run.name}_{dim}"):
    st.subheader(md("Label {dim}", dim=dim_name(dim, labels)))
    st.text_input("Label", current.label, key=f"trav_label_{run.name}_{dim}", placeholder="e.g. hair colour")
    st.checkbox("Meaningful (one clear factor)", current.meaningful, key=f"trav_meaningful_{run.name}_{dim}")
    st.text_area("Note", current.note, key=f"trav_note_{run.name}_{dim}", height=68,
                 placeholder="what changes from left to right")
    st.form_submit_button("Save label", on_click=save_from_form, args=(run, dim), type="primary")
if dim in by_dim:
    s = by_dim[dim]
    st.button(md("Accept suggestion: {suggestion}", suggestion=s.describe(labels)), key="trav_accept_zoom",
              on_click=save, args=(run, dim, s.as_label(), "Accepted"), disabled=current.label == s.attribute)

st.header("Suggested labels")
if encodings is None:
    st.info("Suggestions correlate each dim's posterior mean with the data set's attributes, so they need the data "
            "set (or the run's encodings) on this machine.")
elif not suggested:
    st.info(f"No active dim correlates with an attribute by |r| ≥ {MIN_ABS_R} over {len(encodings['mu']):,} {SPLIT} "
            "images.")
else:
    st.caption(f"Each active dim's strongest attribute by Pearson (point-biserial) r over {len(encodings['mu']):,} "
               f"encoded {SPLIT} images, where |r| ≥ {MIN_ABS_R}. Accepting saves the attribute as the dim's label.")
    for s in suggested:
        text, button = st.columns([4, 1], vertical_alignment="center")
        text.markdown(plain(s.describe(labels)))
        button.button("Accept", key=f"trav_accept_{s.dim}", on_click=save, args=(run, s.dim, s.as_label(), "Accepted"),
                      disabled=labels.get(s.dim, DimLabel()).label == s.attribute)
    with st.expander("All correlations (dims × attributes)"):
        st.dataframe({"dim": [dim_name(int(d), labels) for d in order],
                      **{str(a): np.round(r_matrix[order, j], 2) for j, a in enumerate(encodings["attribute_names"])}})

with st.expander("Suggest from what each dim does to the face (an attribute judge looks at decoded faces)"):
    st.caption(f"Each active dim is set to −{EFFECT_K:g} and +{EFFECT_K:g} in the codes of {EFFECT_FACES} held-out "
               "faces; the attribute judge of `python -m core evaluate --fast` (a small CNN trained on the data "
               "set's labels) scores the decoded faces. A dim is suggested for the attribute whose judged share it "
               f"changes most (by ≥ {MIN_CHANGE:.0%}), and an attribute only for the dims within {NEAR_BEST:.0%} of "
               "the one that changes it most: a dim that only correlates with an attribute draws nothing the judge "
               "sees.")
    active = [int(d) for d in order if not dead[d]]
    if dataset is None or encodings is None:
        st.info("This needs the data set on this machine (the judge learns from its labelled images).")
    elif st.button("Suggest from effects", key="trav_effects_go", disabled=not active):
        st.session_state["trav_effects"] = (run.name, stamp)
    if st.session_state.get("trav_effects") == (run.name, stamp) and dataset is not None and encodings is not None:
        found, aucs = effect_suggestions_for(run, dataset, encodings["mu"][:EFFECT_FACES], active, EFFECT_K)
        if not found:
            st.info(f"No active dim changes any judged attribute by {MIN_CHANGE:.0%} or more.")
        for e in found:
            text, button = st.columns([4, 1], vertical_alignment="center")
            auc = aucs.get(e.attribute)
            text.markdown(plain(e.describe(labels) + (f" (judge's held-out AUC {auc:.2f})" if auc is not None else "")))
            button.button("Accept", key=f"trav_effect_accept_{e.dim}", on_click=save,
                          args=(run, e.dim, e.as_label(), "Accepted"),
                          disabled=labels.get(e.dim, DimLabel()).label == e.attribute)

st.header("All labels")
st.dataframe({"dim": [dim_name(int(d), labels) for d in order],
              "KL (nats)": [round(float(kl[d]), 3) for d in order] if kl is not None else [None] * latent_dim,
              "collapsed": [bool(dead[d]) for d in order],
              "meaningful": [labels.get(int(d), DimLabel()).meaningful for d in order],
              "note": [labels.get(int(d), DimLabel()).note for d in order],
              "suggestion": [f"{by_dim[d].attribute} (r = {by_dim[d].r:+.2f})" if d in by_dim else "" for d in order]},
             hide_index=True)
c1, c2, _ = st.columns([1, 1, 3])
c1.download_button("Labels (JSON)", labels_json(labels), f"{run.name}-labels.json", "application/json",
                   on_click="ignore", key="trav_json")
c2.download_button("Labels (CSV)", labels_csv(labels), f"{run.name}-labels.csv", "text/csv", on_click="ignore",
                   key="trav_csv")
