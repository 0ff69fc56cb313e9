"""Latent arithmetic: attribute vectors from the train split, applied to held-out faces that lack the attribute."""
from typing import Sequence

import numpy as np
import streamlit as st

from core.data.images import grid
from core.explore.arithmetic import (VectorError, VectorSpec, build_vector, column, edit, preset_attribute,
                                     separation_auc, strata, strongest_dims, unlearned_warning)
from core.explore.encode import EDIT_SOURCE, HELD_OUT
from core.explore.condition import attribute_column, condition_edit, face_conditions, reconstruct
from core.metrics.edits import unjudgeable
from core.metrics.tables import edit_rows
from core.runs.labels import LabelError, dim_name, load_labels
from dashboard.charts import edit_tradeoff
from dashboard.common import (decode_codes, edit_faces, encode_faces, keep_background, load_data_or_none,
                              load_encodings, load_evaluation, load_model, pick_faces, pick_run)
from dashboard.text import md, plain, say, user_errors

LIMITS = {"2,000": 2000, "5,000": 5000, "20,000": 20000, "whole split": None}
# A row of faces is laid out in at least this many columns: in three (original, reconstruction, edit) every face
# would be blown up to a third of a wide page, far from the size of the spectrum's faces below it.
FACE_SLOTS = 5

st.title("Latent arithmetic")
st.caption("ΔZ = mean code of train faces **with** an attribute − mean code of those **without**. Adding α·ΔZ to "
           "the code of a held-out face that lacks the attribute should add it; the ROC-AUC of z·ΔZ on held-out "
           "faces says how well the direction separates the two groups (0.5 is chance).")

run = pick_run()
if run is None:
    st.stop()
dataset = load_data_or_none(run, "latent arithmetic (attribute vectors need the data set's labelled faces, and "
                                 "edits need faces to edit); Generate still works from the prior")
if dataset is None:
    st.stop()
names = list(dataset.attributes.names)
if not names:
    say("info", "The {dataset} data set of run {name!r} has no attributes, so there is nothing to compute vectors "
                "for (an image folder takes them from `--attributes-csv`).", dataset=run.config.data.dataset,
        name=run.name)
    st.stop()

# --- the attribute ---------------------------------------------------------------------------------
smile, glasses = preset_attribute(names, "smile"), preset_attribute(names, "glasses")
if st.session_state.get("arith_attribute") not in names:  # first visit, or a run on another data set
    st.session_state["arith_attribute"] = smile or names[0]


def choose(name: str) -> None:
    st.session_state["arith_attribute"] = name


def face_columns(pictures: Sequence[np.ndarray], titles: Sequence[str], caption: str | None = None) -> None:
    """Each picture's faces (N, 3, H, W) stacked top to bottom in a column of their own, under the column's title
    (Markdown or plain text) and scaled to its width, so a face's row lines up across the columns and every column
    says what it shows (the original, an α, a condition value)."""
    # bottom-aligned: a title that wraps in a narrow column pushes its column's text up, never its faces down
    for col, images, title in zip(st.columns(max(len(pictures), FACE_SLOTS), vertical_alignment="bottom"), pictures,
                                  titles):
        say("markdown", "**{title}**", title=title, where=col)
        col.image(grid(images, 1), width="stretch", output_format="PNG")  # JPEG blurs 64-px faces
    if caption:
        st.caption(caption)


left, middle, right = st.columns([1, 1, 4], vertical_alignment="bottom")
left.button("Smile", icon=":material/sentiment_satisfied:", on_click=choose, args=(smile,), disabled=smile is None,
            width="stretch", help=plain(smile) if smile else "this data set has no Smiling attribute")
middle.button(plain(glasses or "Glasses"), icon=":material/eyeglasses:", on_click=choose, args=(glasses,),
              disabled=glasses is None, width="stretch",
              help=plain(glasses) if glasses else "this data set has no Sunglasses or Eyeglasses attribute")
attribute = right.selectbox("Attribute", names, key="arith_attribute")

with st.expander("Vector options: balancing, conditioning, how many faces"):
    balanced = st.toggle("Balanced: correct for attributes that co-occur with this one", key="arith_balanced",
                         help="Takes the with − without difference inside every combination of the confounders' "
                              "values (e.g. among men and among women separately) and averages those differences "
                              "with equal weights, so a confounder that is more common on one side no longer leaks "
                              "into ΔZ. Strata with fewer than 5 faces on either side are skipped.")
    confounders = st.multiselect("Confounders to balance", names, default=["Male"] if "Male" in names else [],
                                 disabled=not balanced, key="arith_confounders")
    condition_on = st.multiselect("Condition on (project these attributes' directions out of ΔZ)", names,
                                  key="arith_condition",
                                  help="Gram–Schmidt against their mean vectors (InterFaceGAN's conditional "
                                       "manipulation): the edit then leaves their z·ΔZ scores unchanged.")
    c1, c2 = st.columns(2)
    # defaults: the sizes `python -m core train` encodes when a run finishes, so a first visit reads them
    train_limit = LIMITS[c1.selectbox("Train faces encoded for ΔZ", list(LIMITS), key="arith_train_limit",
                                      index=list(LIMITS.values()).index(EDIT_SOURCE[1]))]
    test_limit = LIMITS[c2.selectbox("Held-out faces encoded for the AUC", list(LIMITS), key="arith_test_limit",
                                     index=list(LIMITS.values()).index(HELD_OUT[1]))]

spec = VectorSpec(attribute, "balanced" if balanced else "mean", tuple(confounders) if balanced else (),
                  tuple(condition_on))
train = load_encodings(run, "train", train_limit, dataset)
test = load_encodings(run, "test", test_limit, dataset)


@st.cache_data(max_entries=64, show_spinner=False)
def vector_and_auc(path: str, stamp: float, train_limit: int | None, test_limit: int | None, spec: VectorSpec,
                   _train, _test) -> tuple[np.ndarray, float | None, str]:
    """ΔZ and its held-out AUC (None, with the reason, when the test faces are all on one side)."""
    delta = build_vector(_train, spec)
    try:
        labels = column(_test["attribute_names"], _test["attributes"], spec.attribute)
        return delta, separation_auc(_test["mu"], labels, delta, spec.attribute), ""
    except VectorError as e:
        return delta, None, str(e)


with user_errors():
    delta, auc, why_no_auc = vector_and_auc(str(run.path), run.checkpoint_path.stat().st_mtime, train_limit,
                                            test_limit, spec, train, test)
train_labels = column(train["attribute_names"], train["attributes"], attribute)
test_labels = column(test["attribute_names"], test["attributes"], attribute)

m1, m2, m3, m4 = st.columns(4)
m1.metric("Train faces with", f"{int(train_labels.sum()):,}")
m2.metric("Train faces without", f"{int((~train_labels).sum()):,}")
m3.metric("ROC-AUC of z·ΔZ (held-out)", "n/a" if auc is None else f"{auc:.3f}",
          help=plain(why_no_auc) if why_no_auc else
          f"on {len(test_labels):,} test faces: {int(test_labels.sum()):,} with, {int((~test_labels).sum()):,} without")
m4.metric("|ΔZ|", f"{np.linalg.norm(delta):.3g}")
if warning := unlearned_warning(attribute, auc):
    st.warning(plain(warning))
try:
    labels = load_labels(run)
except LabelError as e:
    st.warning(plain(e))
    labels = {}
st.caption("Largest components of ΔZ: " + ", ".join(md("{dim} ({v:+.2f})", dim=dim_name(d, labels), v=v)
                                                    for d, v in strongest_dims(delta)))
if spec.method == "balanced":
    with st.expander("Strata used for balancing"):
        confounder_table = np.stack([column(train["attribute_names"], train["attributes"], c) for c in confounders], 1)
        st.dataframe([{**{c: v for c, v in zip(confounders, s.values)}, "with": s.n_with, "without": s.n_without,
                       "used": s.used} for s in strata(train_labels, confounder_table)], hide_index=True)

# --- the faces -----------------------------------------------------------------------------------------
st.subheader(md("Held-out faces without {attribute}", attribute=attribute))
pool = test["index"][~test_labels]
if len(pool) == 0:
    say("info", "Every encoded held-out face has {attribute}: there is no face to add it to.", attribute=attribute)
    st.stop()
index = pick_faces(pool, len(dataset), key="arith_faces", default_n=4, max_n=8)
already = column(names, dataset.attributes.values[index], attribute)
if already.any():
    say("warning", "Face(s) {faces} already have {attribute}.", faces=", ".join(map(str, index[already])),
        attribute=attribute)
mu = encode_faces(run, dataset, index)

if run.config.family.conditional:  # a cvae takes the attributes as input: edit the same faces by flipping one
    how = st.radio("Edit by", ["vector", "condition"], horizontal=True, key="arith_how",
                   help="vector: z + α·ΔZ, decoded under the model's default condition; condition: each face's own "
                        "code decoded again under its own attributes, with this one's condition set to a value "
                        "(0: without, 1: with)")
    if how == "condition":
        model = load_model(run)
        with user_errors():
            conditions = face_conditions(model, dataset, index)
            position = attribute_column(names, attribute)
        value = st.slider("Condition value (0: without, 1: with)", -1.0, 2.0, 1.0, 0.1, key="arith_cond_value")
        with user_errors():
            pictures = (dataset.images(index), reconstruct(model, mu, conditions),
                        condition_edit(model, mu, conditions, position, [value])[:, 0])
        face_columns(pictures, ["Original", "Reconstruction",
                                md("Condition: {attribute} = {value:+.1f}", attribute=attribute, value=value)])
        st.subheader("Spectrum")
        c_range = st.slider("Condition range", -1.0, 2.0, (0.0, 1.0), 0.1, key="arith_cond_range")
        c_steps = st.slider("Steps", 3, 11, 5, key="arith_cond_steps")
        values = np.linspace(*c_range, c_steps)
        with user_errors():
            strip = condition_edit(model, mu, conditions, position, values)
        face_columns([strip[:, j] for j in range(c_steps)], [f"c = {v:+.2f}" for v in values],
                     md("One row per face; c is the condition value of {attribute} (0: without, 1: with).",
                        attribute=attribute))
        st.stop()

alpha = st.slider("α (strength of the edit)", -3.0, 3.0, 1.0, 0.1, key="arith_alpha")
keep = keep_background(run, "arith_keep_background")
originals = dataset.images(index)
edited = edit_faces(run, originals, mu, edit(mu, delta, alpha)[:, 0], keep)
face_columns([originals, decode_codes(run, mu), edited],
             ["Original", "Reconstruction", f"Edit: α = {alpha:+.1f}"])

evaluated = load_evaluation(run)
judged = next((a for a in evaluated["results"].get("edits", {}).get("attributes", []) if a["name"] == attribute),
              None) if evaluated else None
curve = [r for r in edit_rows(evaluated) if r["attribute"] == attribute and r["vector"] == "mean"] if judged else []
if curve and spec.method == "mean" and not spec.condition_on:  # the vector the evaluation judged
    st.plotly_chart(edit_tradeoff(curve, alpha, attribute), width="stretch")
    for sentence in unjudgeable({"attributes": [judged]}):
        say("warning", "{sentence}.", sentence=sentence)
    say("caption", "From this run's evaluation (eval.json, step {step:,}): the share of {faces} held-out faces "
                   "without {attribute} that the judge calls positive after z + α·ΔZ, the mean pixel change "
                   "against the reconstruction and, where the data set knows its people, the identity change (the "
                   "face verification CNN's distance of edit and reconstruction: 0 is as alike as two photos of one "
                   "person, 1 as two people). The dotted line is the α above.", step=evaluated["step"],
        faces=judged.get("faces", 0), attribute=attribute)

st.subheader("Spectrum")
a_range = st.slider("α range", -5.0, 5.0, (-2.0, 3.0), 0.5, key="arith_range")
steps = st.slider("Steps", 3, 11, 7, key="arith_steps")
alphas = np.linspace(*a_range, steps)
strip = edit_faces(run, originals, mu, edit(mu, delta, alphas), keep)
face_columns([strip[:, j] for j in range(steps)], [f"α = {a:+.2f}" for a in alphas], "One row per face: z + α·ΔZ.")
