"""Generate: faces decoded from the prior, and interpolation paths between two faces."""
import streamlit as st

from core.explore.generate import INTERPOLATIONS, interpolate, prior_codes
from dashboard.common import (decode_codes, encode_faces, load_data_or_none, load_model, pick_faces, pick_run,
                              show_grid, show_strip)

st.title("Generate & interpolate")
run = pick_run()
if run is None:
    st.stop()
latent_dim = load_model(run).latent_dim

st.subheader("Samples from the prior")
st.caption("z ~ N(0, T²·I), decoded. A temperature below 1 trades variety for more typical faces.")
c1, c2, c3 = st.columns(3)
n = c1.slider("Number of samples", 1, 64, 16, key="gen_n")
seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="gen_seed")
temperature = c3.slider("Temperature T", 0.0, 2.0, 1.0, 0.05, key="gen_temperature")
prior = prior_codes(latent_dim, n, int(seed), temperature)
show_strip(decode_codes(run, prior), ncol=min(n, 8), caption=f"samples 1–{n}, seed {seed}, T = {temperature:g}")

st.subheader("Interpolation")
st.caption("Linear: the straight line between the two codes. Spherical (slerp): the great-circle path, which keeps "
           "the codes' length instead of passing through the low-norm middle that the prior rarely produces.")
dataset = load_data_or_none(run, "interpolating between data set faces (between prior samples still works)")
source = st.radio("Between", ["Data set faces", "Prior samples"] if dataset is not None else ["Prior samples"],
                  horizontal=True, key="gen_source")
if source == "Data set faces":
    index = pick_faces(dataset.indices("test"), len(dataset), key="gen_faces", exact=2)
    ends = encode_faces(run, dataset, index)
    show_grid(dataset.images(index), ncol=2, caption=f"the two faces (data set indices {index[0]} and {index[1]})")
else:
    for key, default in (("gen_first", 1), ("gen_second", 2)):  # keep the choice valid when fewer samples are drawn
        st.session_state[key] = min(st.session_state.get(key, default), n)
    a, b = st.columns(2)
    first = a.number_input("First sample", 1, n, key="gen_first")
    second = b.number_input("Second sample", 1, n, key="gen_second")
    ends = prior[[first - 1, second - 1]]
steps = st.slider("Steps", 3, 15, 9, key="gen_steps")
for method in st.multiselect("Paths", INTERPOLATIONS, default=list(INTERPOLATIONS), key="gen_methods"):
    show_strip(decode_codes(run, interpolate(ends[0], ends[1], steps, method)), ncol=steps, caption=method)
