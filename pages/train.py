"""Train: start a run in the background, watch it, stop or resume it, and compare its loss curves with others'.

Jobs are separate processes (core.jobs) that outlive this page and the server; everything shown here is read
back from the run folders, so a run started from the command line shows up the same way.
"""
import streamlit as st

from core.runs import jobs
from core.config import DATASETS, PRESETS, model_defaults
from core.runs.labels import LabelError, load_labels
from core.runs.folder import Run, list_runs
from dashboard.charts import kl_heatmap, train_curves, val_curves
from dashboard.common import USER_ERRORS

MODELS = {"VAE": "vae", "β-VAE": "beta-vae", "ModVAE": "modvae"}
FOLDER_DATA = ("celeba", "lfw", "folder")
POLL_S = 2


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {s:02d} s" if minutes else f"{s} s"


def new_run_options() -> list[str]:
    """The form as `python -m core train` options: the job, its validation and its recorded command share them."""
    c1, c2, c3 = st.columns(3)
    with c1:
        model = MODELS[st.radio("Model", list(MODELS), index=1, horizontal=True, key="tr_model")]
        beta = st.number_input("β (KL weight)", min_value=0.0, value=model_defaults(model)["beta"], step=0.5,
                               key=f"tr_beta_{model}", disabled=model == "vae",
                               help="1 is the plain VAE; larger values push towards disentangled, blurrier codes")
        latent = st.number_input("Latent dims", min_value=1, max_value=1024, value=64, key="tr_latent")
        preset = st.selectbox("Network size", sorted(PRESETS), index=sorted(PRESETS).index("small"), key="tr_preset",
                              help="small: 0.8 M parameters, fine on a CPU; standard: 14 M, for a GPU and CelebA")
        options = ["--model", model, "--beta", f"{beta:g}", "--latent-dim", str(latent), "--preset", preset]
        if model == "modvae":
            options += ["--dims-per-factor", str(st.number_input("Dims per factor", 1, 64, 4, key="tr_dpf")),
                        "--group-size", str(st.number_input("Group size", 2, 256, 16, key="tr_group"))]
    with c2:
        dataset = st.selectbox("Data set", DATASETS, key="tr_dataset")
        options += ["--dataset", dataset]
        if dataset in FOLDER_DATA:
            options += ["--data-root", st.text_input("Data root folder", key="tr_root",
                                                     placeholder="e.g. ../shared/data/celeba").strip()]
        if dataset == "folder" and (csv := st.text_input("Attributes CSV (optional)", key="tr_csv").strip()):
            options += ["--attributes-csv", csv]
        device = st.selectbox("Device", jobs.device_choices(), key="tr_device",
                              help="auto: the GPU when PyTorch sees one, else the CPU")
        options += ["--device", device]
    with c3:
        unit = st.radio("Length in", ["steps", "epochs"], horizontal=True, key="tr_unit")
        if unit == "steps":
            options += ["--steps", str(st.number_input("Steps", min_value=1, value=2000, step=500, key="tr_steps"))]
        else:
            options += ["--epochs", f"{st.number_input('Epochs', min_value=0.01, value=1.0, key='tr_epochs'):g}"]
        options += ["--batch-size", str(st.number_input("Batch size", 1, 65536, 64, key="tr_batch")),
                    "--lr", f"{st.number_input('Learning rate', 0.0, 1.0, 5e-4, format='%.5f', key='tr_lr'):g}"]
        name = st.text_input("Run name", key="tr_name", placeholder="empty: <model>-<data set>-<time>",
                             help="letters, digits, '_', '-', '.'; a new folder in the runs folder").strip()
        if name:
            options += ["--name", name]
    return options


def start(options: list[str]) -> None:
    try:
        with st.spinner("Checking the options and starting the job ..."):  # --epochs may open a folder data set
            run = jobs.launch(jobs.config_from_cli(options))
    except USER_ERRORS as e:
        st.error(f"Not started: {e}")
        return
    st.session_state["train_watch"] = run.name
    st.success(f"Started **{run.name}** in the background: it keeps training if you leave this page or close the "
               "browser. Command: `" + run.config.command + "`")


def cancel(run: Run) -> None:
    try:
        jobs.cancel(run)
        st.session_state["tr_flash"] = ("info", f"Stopping {run.name} after its current step, with a checkpoint ...")
    except USER_ERRORS as e:
        st.session_state["tr_flash"] = ("error", str(e))


def resume(run: Run, steps: int) -> None:
    try:
        jobs.resume(run, steps)
        st.session_state["tr_flash"] = ("info", f"Resumed {run.name} towards step {steps:,}.")
    except USER_ERRORS as e:
        st.session_state["tr_flash"] = ("error", str(e))


@st.fragment(run_every=POLL_S)
def job_panel(run: Run) -> None:
    p = jobs.progress(run)
    st.progress(p.fraction, text=f"**{run.name}** · {p.state} · step {p.step:,} of {p.total:,}")
    c = st.columns(4)
    c[0].metric("Step", f"{p.step:,} / {p.total:,}")
    c[1].metric("Images / s", "–" if p.images_per_s is None else f"{p.images_per_s:,.0f}")
    c[2].metric("Time left", duration(p.eta_s) if p.state == "running" else "–")
    c[3].metric("State", p.state)
    if p.state == "running":
        st.button("Cancel (stops after the current step, with a checkpoint)", key="tr_cancel", icon=":material/stop:",
                  on_click=cancel, args=(run,))
    else:
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        total = c1.number_input("Train to step", min_value=1, value=p.total if p.step < p.total else p.step + 1000,
                                step=500, key=f"tr_resume_steps_{run.name}")
        c2.button("Resume from the last checkpoint", key="tr_resume", icon=":material/play_arrow:", on_click=resume,
                  args=(run, int(total)))
    if flash := st.session_state.pop("tr_flash", None):
        getattr(st, flash[0])(flash[1])
    if p.state == "failed" and p.error:
        st.error(p.error)
    if log := jobs.log_tail(run):
        with st.expander("Training log (train.log)", expanded=p.state == "failed"):
            st.code(log, language=None)


def readable(run: Run) -> bool:
    """Home lists broken run folders with their problem; there is nothing to watch or plot in them."""
    try:
        return run.config is not None
    except USER_ERRORS:
        return False


def label(run: Run) -> str:
    config = run.config
    return f"{run.name} (β={config.loss.beta:g})"


def watch(name: str) -> None:
    """Show `name` in the job panel and, alone, in the curves (the user can add others to compare)."""
    st.session_state["tr_watch"] = name
    st.session_state["tr_compare"] = [name]


def curves(runs: list[Run]) -> None:
    names = [r.name for r in runs]
    chosen = st.multiselect("Runs to plot (overlay several to compare β values)", names, key="tr_compare")
    log_y = st.checkbox("Logarithmic y axis", key="tr_log")
    chosen_runs = [runs[names.index(n)] for n in chosen]
    if not chosen_runs:
        st.info("Pick at least one run.")
        return
    train = {label(r): r.metrics("train") for r in chosen_runs}
    if not any(train.values()):
        st.info("No training metrics logged yet.")
        return
    st.plotly_chart(train_curves(train, log_y), key="tr_fig_train")
    val = {label(r): r.metrics("val") for r in chosen_runs}
    if any(val.values()):
        st.plotly_chart(val_curves(val, log_y), key="tr_fig_val")
    heat = chosen_runs[0] if len(chosen_runs) == 1 else chosen_runs[chosen.index(
        st.selectbox("KL heatmap of", chosen, key="tr_heat"))]
    try:
        labels = load_labels(heat)
    except LabelError:
        labels = {}  # the heatmap is still useful with plain dim numbers; Traversals reports the broken file
    st.plotly_chart(kl_heatmap(heat.metrics("train"), labels, f"KL per latent dimension: {heat.name}"),
                    key="tr_fig_kl")
    st.caption("Dims whose KL stays near 0 are unused (collapsed); β > 1 leaves fewer, more independent dims.")


st.title("Train")

with st.expander("New run", expanded=True):
    options = new_run_options()
    if st.button("Start training", type="primary", key="tr_start"):
        start(options)

runs = [run for run in list_runs() if readable(run)]
if not runs:
    st.info("No runs yet: start one above.")
    st.stop()

names = [r.name for r in runs]
running = [r.name for r in runs if jobs.progress(r).state == "running"]
launched = st.session_state.pop("train_watch", None)  # set by a launch here or on Home: watch the new run
if launched in names:
    watch(launched)
elif st.session_state.get("tr_watch") not in names:  # first visit, or the watched run's folder was removed
    watch(running[0] if running else names[0])
# runs picked earlier may have been deleted since
st.session_state["tr_compare"] = [n for n in st.session_state.get("tr_compare", []) if n in names]
st.subheader("Job")
st.selectbox("Run", names, key="tr_watch", on_change=lambda: watch(st.session_state["tr_watch"]))
job_panel(runs[names.index(st.session_state["tr_watch"])])

st.subheader("Loss curves")
st.fragment(curves, run_every=5 if running else None)(runs)  # while a job runs, its curves grow as you watch
