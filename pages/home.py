"""Home: the runs in the runs folder, where to go next, and a one-click demo model."""
import time
from datetime import datetime

import streamlit as st

from core.config import RunConfig
from core.runs import jobs
from core.runs.folder import default_runs_dir
from core.runs.summary import summaries
from dashboard.bootstrap import ROOT
from dashboard.text import USER_ERRORS, code, plain, say

PAGES = ROOT / "pages"
LINKS = (  # the page, and what it is for
    ("train.py", "Train", "start a run in the background, watch its losses, stop or resume it"),
    ("traversals.py", "Traversals", "what each latent dim does to a face; label the dims"),
    ("embeddings.py", "Embeddings", "a map of the latent means, coloured by attribute"),
    ("arithmetic.py", "Arithmetic", "attribute vectors: add a smile, remove glasses"),
    ("generate.py", "Generate", "sample new faces, interpolate between two"),
    ("photo.py", "Your photo", "edit your own face: upload a photo or take one"),
    ("compare.py", "Compare", "two runs side by side on the same faces"),
    ("metrics.py", "Metrics", "disentanglement, likelihood and edit scores; evaluate a run"),
    ("verification.py", "Verification", "same person or not? latent codes against a CNN"),
)
# β-VAE on the built-in faces, short enough to watch finish: about a minute on a free 2-core CPU
QUICK_DEMO = {"model": "beta-vae", "data.dataset": "synthfaces", "train.steps": 500, "train.val_every": 250}


def train_demo() -> None:
    """Button callback: launch, then open the Train page on the new run (a callback may not switch pages)."""
    try:
        name = f"quick-demo-{time.strftime('%Y%m%d-%H%M%S')}"  # not demo-*: those are the shipped runs
        run = jobs.launch(RunConfig.from_options(QUICK_DEMO, name))
    except USER_ERRORS as e:
        st.session_state["home_flash"] = str(e)
        return
    st.session_state["train_watch"] = run.name
    st.session_state["home_go_train"] = True


def number(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


@st.fragment(run_every=10)  # new or copied-in runs appear, and running ones move, without a click
def runs_table() -> None:
    rows = summaries()
    good, broken = [r for r in rows if r.problem is None], [r for r in rows if r.problem is not None]
    if not rows:
        say("info", "No runs yet in {folder}: train the demo model above, start a run on the **Train** page, or copy "
                    "a run folder here.", folder=code(default_runs_dir()))
        return
    st.dataframe(
        [{"run": r.name, "model": r.model, "β": r.beta, "data": r.dataset,
          "step": f"{r.step:,} / {r.total_steps:,}", "epochs": number(r.epochs, 2), "loss": number(r.loss),
          "recon": number(r.recon), "KL": number(r.kl, 2), "val −ELBO": number(r.val_neg_elbo), "status": r.state,
          "trained": datetime.fromtimestamp(r.trained) if r.trained else None} for r in good],
        hide_index=True, width="stretch",
        column_config={"β": st.column_config.NumberColumn(width="small"),
                       "epochs": st.column_config.TextColumn(width="small"),
                       "trained": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
    say("caption", "Losses in nats per image: loss, recon and KL over the last logged training interval, val −ELBO "
                   "at the last validation. Trained: when the run finished or stopped (a running one: when it "
                   "started), as its own status.json records it, so the demo runs show when they were trained, not "
                   "when they were copied here. Runs folder: {folder} (set `LATENTLAB_CHECKPOINTS` to use another).",
        folder=code(default_runs_dir()))
    for r in good:
        if r.error:
            say("warning", "**{name}** failed: {error}", name=r.name, error=r.error)
    for r in broken:
        say("warning", "**{name}** ({path}) cannot be opened: {problem}", name=r.name, path=code(r.path),
            problem=r.problem)


st.title("LatentLab")
st.caption("A workbench for learning, inspecting and editing the latent spaces of face VAEs.")

if st.session_state.pop("home_go_train", False):
    st.switch_page(PAGES / "train.py")

st.subheader("What to do first")
st.markdown(
    "1. **Pick or train a model.** The demo runs `demo-vae`, `demo-beta-vae` and `demo-modvae` (SynthFaces, "
    "64 latent dims) ship with LatentLab, or train one now:")
st.button("Train a demo model now (β-VAE on SynthFaces, 500 steps: a minute or two on a CPU)",
          icon=":material/rocket_launch:", on_click=train_demo, key="home_demo")
if flash := st.session_state.pop("home_flash", None):
    st.error(plain(flash))
st.markdown(
    "2. **Traversals**: slide one latent dim at a time and see what it changes; label the dims that mean something.\n"
    "3. **Embeddings** and **Arithmetic**: where attributes live in the latent space, and how to move along them.\n"
    "4. **Compare** two runs (β-VAE against ModVAE, or two values of β) on the same faces.")

st.subheader("Pages")
columns = st.columns(2)
for i, (file, title, what) in enumerate(LINKS):
    columns[i % 2].page_link(str(PAGES / file), label=f"**{title}**: {what}", icon=":material/arrow_forward:")

st.subheader("Runs")
runs_table()
