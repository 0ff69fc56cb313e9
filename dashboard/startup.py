"""Work the dashboard starts once per server process, in the background, so that first clicks do not wait for it:
UMAP's compile warm-up, and the imports of the pages after Home. No torch here (Home imports this).
"""
from __future__ import annotations

import importlib
import threading

import streamlit as st

from core.explore.umap_warm import start_warm_up

# What the pages after Home import, most used first: torch (through the models) and the data sets, the metrics
# (scikit-learn and SciPy: Metrics, Arithmetic, Verification), plotly. 1.4 s of CPU for torch alone on the project's 2-core machine, paid by whichever
# page a user opens second unless it is loaded before the click.
PAGE_MODULES = ("dashboard.common", "core.metrics", "dashboard.charts", "plotly.express")


@st.cache_resource(show_spinner=False)
def warm_up_umap() -> None:
    """Compile UMAP in the background (core.explore.umap_warm.start_warm_up), so that the first "Compute UMAP"
    loads compiled code instead of spending half a minute compiling it."""
    start_warm_up()


@st.cache_resource(show_spinner=False)
def preload_pages() -> threading.Thread:
    """Import PAGE_MODULES in a background thread once the first page has been drawn. A page opened meanwhile
    waits on Python's import lock for what is already loading instead of importing it a second time."""
    thread = threading.Thread(target=lambda: [importlib.import_module(m) for m in PAGE_MODULES],
                              name="latentlab-preload", daemon=True)
    thread.start()
    return thread
