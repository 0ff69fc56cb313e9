"""LatentLab dashboard entry point: `streamlit run dashboard/Home.py` from the repository root."""
import bootstrap  # noqa: F401  (puts the repository root on sys.path before `core` is imported)
import streamlit as st

from dashboard.access import local_only
from dashboard.bootstrap import ROOT
from dashboard.startup import preload_pages, warm_up_umap

# a local file: a Material icon here would be fetched from a font server, and the app must work offline
st.set_page_config(page_title="LatentLab", page_icon=str(ROOT / "dashboard" / "favicon.png"), layout="wide")
local_only()  # before any page runs
warm_up_umap()

PAGES = ROOT / "pages"
st.navigation([
    st.Page(PAGES / "home.py", title="Home", icon=":material/home:", default=True),
    st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(PAGES / "traversals.py", title="Traversals", icon=":material/tune:"),
    st.Page(PAGES / "embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page(PAGES / "arithmetic.py", title="Arithmetic", icon=":material/add_circle:"),
    st.Page(PAGES / "generate.py", title="Generate", icon=":material/casino:"),
    st.Page(PAGES / "photo.py", title="Your photo", icon=":material/photo_camera:"),
    st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare:"),
    st.Page(PAGES / "metrics.py", title="Metrics", icon=":material/analytics:"),
    st.Page(PAGES / "verification.py", title="Verification", icon=":material/how_to_reg:"),
]).run()
preload_pages()  # after the first page is drawn: it must not compete with it
