"""Your photo: frame an uploaded or camera photo like the training faces, see the run's reconstruction of it, edit it
(attribute vector, condition or labelled dim) and download original | reconstruction | edit as one PNG."""
import streamlit as st

from core.data.photo import MAX_MEGABYTES, MAX_PIXELS, PhotoCrop, crop_face, face_guide, framing_preview, load_photo
from core.explore.arithmetic import VectorSpec, build_vector, edit, preset_attribute
from core.explore.condition import attribute_column, condition_edit
from core.explore.photo import dim_direction, encode_photo, photo_condition, triptych_png
from core.runs.labels import LabelError, dim_name, load_labels
from dashboard.common import (decode_codes, edit_faces, keep_background, load_data_or_none, load_encodings, load_model,
                              pick_run, show_grid)
from dashboard.text import md, plain, say, user_errors

TRAIN_FACES = 5000  # the Arithmetic page's default: both pages build ΔZ from one cached encoding of the train split
SOURCES = ("Upload a file", "Take a photo")

st.title("Your photo")
st.caption("Frame a face the way the run's training faces are framed, see how the model reconstructs it and edit it "
           "like a data set face. The photo stays in this browser session: it is never saved, neither in the run "
           "folder nor anywhere else.")
run = pick_run()
if run is None:
    st.stop()

# The camera only starts when asked for: a camera widget asks the browser for the camera as soon as it is drawn.
source = st.radio("Photo", SOURCES, horizontal=True, key="photo_source")
if source == SOURCES[0]:
    upload = st.file_uploader(f"A JPEG, PNG or WebP photo of a face (at most {MAX_MEGABYTES} MB and "
                              f"{MAX_PIXELS // 1_000_000} megapixels)", max_upload_size=MAX_MEGABYTES,
                              key="photo_upload")
else:
    upload = st.camera_input("Look at the camera", key="photo_camera")
if upload is None:
    for key in ("photo", "photo_file"):  # a removed photo is forgotten
        st.session_state.pop(key, None)
    st.info("Upload a photo of a face, or take one, to see it reconstructed and edited by this run's model.")
    st.stop()

with user_errors():
    # Decoded once per upload and kept in this session only: a shared cache would keep strangers' photos.
    if st.session_state.get("photo_file") != upload.file_id:
        st.session_state.pop("photo", None)
        st.session_state["photo"] = load_photo(upload.getvalue())
        st.session_state["photo_file"] = upload.file_id
photo = st.session_state["photo"]

# --- framing ---------------------------------------------------------------------------------------------------
st.subheader("Frame the face")
dataset_name = run.config.data.dataset
guide = face_guide(dataset_name)
left, right = st.columns([2, 3])
with left:
    x = st.slider("Centre, left to right", 0.0, 1.0, 0.5, 0.005, key="photo_x")
    y = st.slider("Centre, top to bottom", 0.0, 1.0, 0.5, 0.005, key="photo_y")
    size = st.slider("Size (share of the shorter edge)", 0.05, 1.0, 1.0, 0.01, key="photo_size")
    if guide is None:
        say("caption", "Training faces of the {dataset} data set have no fixed framing, so there is no guide: frame "
                       "the face as they are framed.", dataset=dataset_name)
    else:
        say("caption", "Move and size the square until the eyes sit in the yellow circles and the mouth on the "
                       "yellow line: that is where the {dataset} training faces have them.", dataset=dataset_name)
crop = PhotoCrop(x, y, size)
preview = framing_preview(photo.pixels, crop, guide)
face = crop_face(photo.pixels, crop)
right.image(preview, caption=md("{format}, {w:,} × {h:,} pixels", format=photo.format, w=photo.original_size[0],
                                h=photo.original_size[1]), width=preview.shape[1], output_format="PNG")

# --- reconstruction and edit -----------------------------------------------------------------------------------
st.subheader("Reconstruction and edit")
model = load_model(run)
mu = encode_photo(model, face)
dataset = load_data_or_none(run, "editing by attribute vector or condition (they need the data set's labelled "
                                 "faces); moving a labelled dim still works")
names = list(dataset.attributes.names) if dataset is not None else []
kinds = (["Attribute vector"] if names else []) + (["Condition"] if names and run.config.family.conditional else [])
how = st.radio("Edit with", kinds + ["Labelled dim"], horizontal=True, key="photo_how")
keep = how != "Condition" and keep_background(run, "photo_keep_background")  # conditions: not composited

edited, title = None, ""
if how == "Labelled dim":
    try:
        labels = load_labels(run)
    except LabelError as e:
        st.warning(plain(e))
        labels = {}
    labelled = [d for d, label in sorted(labels.items()) if label.label and d < model.latent_dim]
    if not labelled:
        say("info", "No dim of run {name} has a label yet: name dims on the **Traversals** page, then move them "
                    "here.", name=run.name)
    else:
        dim = st.selectbox("Dim", labelled, format_func=lambda d: dim_name(d, labels), key="photo_dim")
        alpha = st.slider("α (prior standard deviations added to the dim)", -3.0, 3.0, 1.0, 0.1, key="photo_dim_alpha")
        edited = edit_faces(run, face[None], mu, edit(mu, dim_direction(model.latent_dim, dim), alpha)[:, 0], keep)
        title = md("{dim} {alpha:+.1f}", dim=dim_name(dim, labels), alpha=alpha)
else:
    if st.session_state.get("photo_attribute") not in names:  # first visit, or a run on another data set
        st.session_state["photo_attribute"] = preset_attribute(names, "smile") or names[0]
    attribute = st.selectbox("Attribute", names, key="photo_attribute")
    if how == "Condition":
        value = st.slider("Condition value (0: without, 1: with)", -1.0, 2.0, 1.0, 0.1, key="photo_condition")
        with user_errors():
            edited = condition_edit(model, mu, photo_condition(model, names), attribute_column(names, attribute),
                                    [value])[:, 0]
        title = md("{attribute} = {value:+.1f}", attribute=attribute, value=value)
    else:
        alpha = st.slider("α (strength of the edit)", -3.0, 3.0, 1.0, 0.1, key="photo_alpha")
        train = load_encodings(run, "train", TRAIN_FACES, dataset)
        with user_errors():
            delta = build_vector(train, VectorSpec(attribute))
        edited = edit_faces(run, face[None], mu, edit(mu, delta, alpha)[:, 0], keep)
        title = md("{attribute} vector, α = {alpha:+.1f}", attribute=attribute, alpha=alpha)

reconstruction = decode_codes(run, mu)
shown = [(face[None], "Original (the crop)"), (reconstruction, "Reconstruction")]
shown += [(edited, title)] if edited is not None else []
for column, (images, caption) in zip(st.columns(3), shown):
    with column:
        say("markdown", "**{caption}**", caption=caption)
        show_grid(images, ncol=1, scale=3)
if edited is not None:
    png = triptych_png(face, reconstruction[0], edited[0])
    st.download_button("Download original | reconstruction | edit (PNG)", png, file_name="latentlab-photo-edit.png",
                       mime="image/png", icon=":material/download:", key="photo_download")
