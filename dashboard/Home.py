"""LatentLab dashboard entry point: `streamlit run dashboard/Home.py` from the repository root."""
import bootstrap  # noqa: F401  (puts the repository root on sys.path before `core` is imported)
import streamlit as st

from core.runs import list_runs

st.set_page_config(page_title="LatentLab", layout="wide")


def home() -> None:
    st.title("LatentLab")
    st.caption("Learn, inspect and edit disentangled latent spaces of faces with VAEs.")
    runs = list_runs()
    if not runs:
        st.info("No runs yet. Train one from a terminal: `python -m core train --model beta-vae --dataset synthfaces`")
        return
    rows = []
    for run in runs:
        try:
            config, status = run.config, run.status()
        except ValueError as e:  # a broken run folder is shown, not fatal
            rows.append({"run": run.name, "status": f"unreadable: {e}"})
            continue
        rows.append({"run": run.name, "model": config.model, "beta": config.loss.beta, "dataset": config.data.dataset,
                     "status": status.get("state"), "step": f"{status.get('step', 0)}/{config.train.steps}"})
    st.dataframe(rows, hide_index=True, use_container_width=True)


st.navigation([st.Page(home, title="Home", default=True)]).run()
