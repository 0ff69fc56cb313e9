"""Train: start a run in the background, watch it, stop or resume it, and compare its loss curves with others'.

Jobs are separate processes (core.runs.jobs) that outlive this page and the server; everything shown here is read
back from the run folders, so a run started from the command line shows up the same way.
"""
import time

import streamlit as st

from core import recipes
from core.config import DataConfig, RunConfig, command_line, option_value
from core.data import load_dataset
from core.models.family import FAMILIES
from core.runs import jobs
from core.runs.folder import Run, list_runs
from core.runs.labels import LabelError, load_labels
from core.training.batches import steps_for_epochs
from dashboard.charts import kl_heatmap, regulariser_curves, train_curves, val_curves
from dashboard.text import USER_ERRORS, md, plain, say
from dashboard.settings_form import setting_input

FOLDER_DATA = ("celeba", "lfw", "folder")
POLL_S = 2


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {s:02d} s" if minutes else f"{s} s"


def _recipe_options(chosen: str, dataset: str) -> dict:
    """What the chosen recipe sets on `dataset`. When that recipe changes (another choice, or `auto` on another data
    set), the widgets of what recipes set start again from their defaults, the new recipe's."""
    recipe = recipes.resolve(chosen, dataset)
    applied = recipe.name if recipe else recipes.NONE
    if st.session_state.get("tr_recipe_applied", applied) != applied:
        for key in {k for r in recipes.RECIPES for k in r.options}:
            st.session_state.pop(f"tr_{key}", None)
    st.session_state["tr_recipe_applied"] = applied
    return recipe.options if recipe else {}


def new_run_form() -> tuple[dict, str | None, float | None]:
    """The form as settings ({"section.field": value}), the run name and, when asked in epochs, the epoch count.
    Defaults come from RunConfig for the chosen family under the chosen recipe (core.recipes), so the page, the CLI
    and Python agree."""
    dataset = st.session_state.get("tr_data.dataset", DataConfig().dataset)  # the data set widget is drawn below
    titles = {f.title: f.name for f in FAMILIES}
    st.selectbox("Recipe", recipes.choices(), key="tr_recipe",
                 help="a measured bundle of settings; auto: the data set's ("
                      + "; ".join(f"{r.name} for {', '.join(r.datasets)}: {r.summary}" for r in recipes.RECIPES)
                      + "); none: the family's own defaults")
    given = _recipe_options(st.session_state["tr_recipe"], dataset)
    c1, c2, c3 = st.columns(3)
    first = given.get("model", RunConfig.__dataclass_fields__["model"].default)
    model = titles[c1.radio("Model", list(titles), index=list(titles.values()).index(first), horizontal=True,
                            key="tr_model", help="; ".join(f"{f.title}: {f.summary}" for f in FAMILIES))]
    family = FAMILIES[model]
    defaults = RunConfig.from_options({**given, "model": model}, "form")
    options: dict = {**given, "model": model}  # what the recipe sets and the form does not show goes as it is
    if given:
        say("caption", "Recipe settings: {settings}.", settings=", ".join(f"{k} = {v}" for k, v in given.items()))

    def field(key: str, column, per_family: bool = False, **kwargs) -> None:
        widget_key = f"tr_{key}_{model}" if per_family else f"tr_{key}"
        options[key] = setting_input(key, option_value(defaults, key), widget_key, column, **kwargs)

    with c1:
        for key in family.settings:
            field(key, c1, per_family=True)
        field("arch.latent_dim", c1)
        field("arch.preset", c1)
    with c2:
        field("data.dataset", c2)
        if options["data.dataset"] in FOLDER_DATA:
            field("data.root", c2, placeholder="e.g. ../shared/data/celeba")
        if options["data.dataset"] == "folder":
            field("data.attributes_csv", c2)
        options["train.device"] = c2.selectbox("Device", jobs.device_choices(), key="tr_device",
                                               help="auto: the GPU when PyTorch sees one, else the CPU")
    with c3:
        unit = st.radio("Length in", ["steps", "epochs"], horizontal=True, key="tr_unit")
        epochs = None
        if unit == "steps":
            field("train.steps", c3)
        else:
            epochs = float(st.number_input("Epochs", value=1.0, format="%g", key="tr_epochs",
                                           help="passes over the train split (must be > 0)"))
        field("train.batch_size", c3)
        field("train.lr", c3)
        name = st.text_input("Run name", key="tr_name", placeholder="empty: <model>-<data set>-<time>",
                             help="letters, digits, '_', '-', '.'; a new folder in the runs folder").strip()
    return options, name or None, epochs


def start(options: dict, name: str | None, epochs: float | None) -> None:
    """Check the form through RunConfig (the same checks and messages as the CLI) and launch the job."""
    try:
        with st.spinner("Checking the options and starting the job ..."):  # epochs may open a folder data set
            stamp = time.strftime("%Y%m%d-%H%M%S")
            config = RunConfig.from_options(options, name or f"{options['model']}-{options['data.dataset']}-{stamp}")
            if epochs is not None:
                config.train.steps = steps_for_epochs(config, epochs, load_dataset(config.data, progress=False))
                config.command = command_line(config)
            run = jobs.launch(config)
    except USER_ERRORS as e:
        st.error(f"Not started: {plain(str(e))}")
        return
    st.session_state["train_watch"] = run.name
    st.session_state["tr_started"] = run.name  # the job panel says so while the job it started runs


def cancel(run: Run) -> None:
    st.session_state.pop("tr_started", None)
    try:
        jobs.cancel(run)
        st.session_state["tr_flash"] = ("info", md("Stopping {name} after its current step, with a checkpoint ...",
                                                   name=run.name))
    except USER_ERRORS as e:
        st.session_state["tr_flash"] = ("error", plain(e))


def resume(run: Run, steps: int) -> None:
    st.session_state.pop("tr_started", None)
    try:
        jobs.resume(run, steps)
        st.session_state["tr_flash"] = ("info", md("Resumed {name} towards step {steps:,}.", name=run.name,
                                                   steps=steps))
    except USER_ERRORS as e:
        st.session_state["tr_flash"] = ("error", plain(e))


@st.fragment(run_every=POLL_S)
def job_panel(run: Run) -> None:
    """The watched run's job as it is now, redrawn every POLL_S seconds: progress, Cancel or Resume, the last
    outcome of either, the log. A fragment, so everything that describes the job has to be drawn here: what the
    rest of the page drew stays as it was until the next full rerun."""
    p = jobs.progress(run)
    started = st.session_state.get("tr_started") == run.name
    if started and p.state != "running":
        del st.session_state["tr_started"]  # it ended (or failed to start): its launch is news no longer
    elif started:
        say("success", "Started **{name}** in the background: it keeps training if you leave this page or close the "
                       "browser.", name=run.name)
        st.code(run.config.command, language="bash")
    st.progress(p.fraction, text=md("**{name}** · {state} · step {step:,} of {total:,}", name=run.name, state=p.state,
                                    step=p.step, total=p.total))
    c = st.columns(4)
    c[0].metric("Step", f"{p.step:,} / {p.total:,}")
    c[1].metric("Images / s", "–" if p.images_per_s is None else f"{p.images_per_s:,.0f}")
    c[2].metric("Time left", duration(p.eta_s) if p.state == "running" else "–")
    c[3].metric("State", plain(p.state))
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
        getattr(st, flash[0])(plain(flash[1]))  # stored as Markdown (md, plain): plain() keeps it as it is
    if p.state == "failed" and p.error:
        st.error(plain(p.error))
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
    if (extra := regulariser_curves(train, log_y)) is not None:  # β-TCVAE's MI / TC / dim-KL, FactorVAE's TC, ...
        st.plotly_chart(extra, key="tr_fig_reg")
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
    form = new_run_form()
    if st.button("Start training", type="primary", key="tr_start"):
        start(*form)

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
