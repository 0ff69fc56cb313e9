"""Metrics: evaluate a run in the background and compare the scores of every evaluated run."""
import shlex

import plotly.express as px
import streamlit as st

from core.metrics.background import evaluation_progress, evaluation_running, start_evaluation
from core.metrics.evaluate import load_eval
from core.metrics.leaderboard import LABELS, Group, group_runs, leaderboard_rows, scatter_points, sort_groups
from core.metrics.edits import unjudgeable
from core.metrics.tables import (DISENTANGLEMENT, FLIP_RATE, SCORES, SHORT, both, comparison_rows, edit_rows,
                                 judge_rows, probe_rows, score_format, score_rows, skipped_ground_truth)
from core.runs.folder import list_runs
from dashboard.charts import chart_rows, chart_text
from dashboard.common import pick_run, start_background
from dashboard.text import code, md, plain, say, user_errors

POLL_S = 2
SCORE_COLUMNS = [label for label, _ in SCORES.values()] + [FLIP_RATE]  # comparison_rows' scores

st.title("Metrics")
run = pick_run(key="met")
if run is None:
    st.stop()


@st.fragment(run_every=POLL_S)
def job_panel(run, evaluated: bool) -> None:
    """The evaluation's progress while one runs, else the Evaluate button (and, for a run never `evaluated`, how to
    evaluate it). A fragment: it follows a job started or ended by its button without redrawing the page."""
    p = evaluation_progress(run)
    was_running = st.session_state.get("met_running") == run.name
    st.session_state["met_running"] = run.name if p.running else None
    if was_running and not p.running:
        st.rerun()  # the evaluation just ended: redraw the whole page with the new eval.json
    if p.running:
        st.progress(p.fraction, text=md("Evaluating **{name}** · {done} of {total} metrics done", name=run.name,
                                        done=p.done, total=p.total or "?")
                                     + (md(" · now: {current}", current=p.current) if p.current else ""))
    else:
        st.button(md("Evaluate {name} (fast mode, in the background)", name=run.name), key="met_start",
                  icon=":material/play_arrow:", on_click=start_background,
                  args=(start_evaluation, run, "evaluating", "met_flash"))
    if flash := st.session_state.pop("met_flash", None):
        getattr(st, flash[0])(plain(flash[1]))  # Markdown from md() / plain(): kept as it is
    if not evaluated and p.running:
        say("info", "**{name}** is being evaluated ({done} of {total} metrics done): its scores appear here when it "
                    "finishes.", name=run.name, done=p.done, total=p.total or "?")
    elif not evaluated:
        say("info", "**{name}** has no eval.json yet. Click **Evaluate** above, or run {command} from the repository "
                    "root.", name=run.name, command=code(f"python -m core evaluate {shlex.quote(run.name)} --fast"))
    if p.log:
        with st.expander("Evaluation log (evaluate.log)", expanded=not p.running and "Error" in p.log):
            st.code(p.log, language=None)


say("caption", "Fast mode takes a few minutes on a CPU (noisier estimates, same definitions). For the full settings "
               "run {command} in a terminal; this page shows its results too.",
    command=code(f"python -m core evaluate {shlex.quote(run.name)}"))
doc = load_eval(run)
job_panel(run, doc is not None)

if doc is not None:
    st.subheader(md("{name}: {model} on {dataset}, step {step:,}", name=run.name, model=doc["model"],
                    dataset=doc["dataset"], step=doc["step"]))
    st.dataframe(score_rows(doc), hide_index=True,
                 column_config={"score": st.column_config.TextColumn(width="medium"),
                                "seconds": st.column_config.NumberColumn(format="%.1f")})
    if skipped := skipped_ground_truth(doc):
        say("info", "{dataset} has no ground-truth factors, so the disentanglement metrics ({skipped}) are not "
                    "computed; the attribute probes and edit flip rates below are this run's measures of how "
                    "attributes sit in its latent space.", dataset=doc["dataset"], skipped=", ".join(skipped))

    if probes := probe_rows(doc):
        fig = px.bar(chart_rows(probes), x="attribute", y="AUC", color="probe", barmode="group", range_y=[0, 1],
                     hover_data=["dim"], title="How well the latent means predict each attribute (held-out ROC-AUC)")
        fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
        st.plotly_chart(fig, width="stretch")

    edits = doc["results"].get("edits", {})
    if rows := edit_rows(doc):
        measure = st.radio("Edit measure", ["flip rate", "dependency", "pixel change"], horizontal=True,
                           key="met_edit_measure")
        fig = px.line(chart_rows(rows), x="α", y=measure, color="vector", facet_col="attribute", markers=True,
                      range_y=[0, 1.02] if measure == "flip rate" else None,
                      title=f"Edits z + α·ΔZ on held-out faces without the attribute: {measure}")
        st.plotly_chart(fig, width="stretch")
        st.dataframe(judge_rows(doc), hide_index=True)
        for sentence in unjudgeable(edits):
            say("warning", "{sentence}.", sentence=sentence)
        shown = {r["attribute"] for r in rows}
        judge = edits["judge"]

        def scores(key: str) -> str:
            return ", ".join(f"{name} {v:.3f}" for name, v in judge.get(key, {}).items()
                             if name in shown and v is not None)

        on_reconstructions = (md("; on this run's reconstructions of the same faces AUC {aucs}, accuracy {accuracy}",
                                 aucs=scores("reconstruction_aucs"), accuracy=scores("reconstruction_accuracy"))
                              if judge.get("reconstruction_aucs") else "")
        say("caption", "Judge: a small CNN trained on the {trained_on}; held-out AUC {aucs}{accuracy}{recon}. Flip "
                       "rate at α = 0 is its false-positive rate on reconstructions; dependency is the mean change of "
                       "its probabilities for the other attributes; pixel change is the mean |edit − reconstruction|.",
            trained_on=judge["trained_on"], aucs=scores("aucs"),
            accuracy=f", accuracy {scores('accuracy')}" if judge.get("accuracy") else "", recon=on_reconstructions)
    elif "skipped" in edits:
        say("info", "Edit quality: skipped: {reason}", reason=edits["skipped"])


def runs_table(table: list[dict], present: list[str]) -> None:
    """Every evaluated run's scores. By default the run, model, β, step (and data set, when they differ) and the
    `present` scores (those some run has), under short headings, so that the table fits the page; every column on
    demand."""
    compact = ["run", "model", *(["data set"] if len({row["data set"] for row in table}) > 1 else []), "β", "step",
               *present]
    every = st.toggle("All columns (data set, latent dims, scores no run has)", key="met_all_columns")
    st.dataframe(table, hide_index=True, column_order=None if every else compact,
                 column_config={"run": st.column_config.TextColumn(pinned=True),
                                "β": st.column_config.NumberColumn(format=score_format("β"), width="small"),
                                **{s: st.column_config.NumberColumn(SHORT.get(s, s), help=s, format=score_format(s))
                                   for s in SCORE_COLUMNS}})


def scatter(where, table: list[dict], x: str, y: str, title: str) -> None:
    """`y` against `x` over the evaluated runs that have both, in `where`; with one such run its two numbers
    instead (a lone point on axes scaled around it says nothing), with none a note."""
    points = both(table, x, y)
    if len(points) > 1:
        where.plotly_chart(px.scatter(chart_rows(points), x=x, y=y, hover_name="run", color="model", title=title),
                           width="stretch")
    elif points:
        row = points[0]
        say("markdown", "**{title}**", title=title, where=where)
        for column, label in zip(where.columns(2), (x, y)):
            column.metric(label, score_format(label) % row[label])
        say("caption", "{run} only: a chart needs two evaluated runs that have both.", run=row["run"], where=where)
    else:
        say("info", "No evaluated run has both {x} and {y}.", x=x, y=y, where=where)


st.divider()
st.subheader("All evaluated runs")
runs = list_runs()
with user_errors():
    table = comparison_rows(runs)
if not table:
    st.info("No run has an eval.json yet.")
    st.stop()
present = [s for s in SCORE_COLUMNS if any(row[s] is not None for row in table)]
runs_table(table, present)
c1, c2 = st.columns(2)
y = c1.selectbox("β against", present, key="met_beta_metric")
scatter(c1, table, "β", y, f"β vs {y}")
disentanglement = [s for s in DISENTANGLEMENT if s in present]
if disentanglement:
    d = c2.selectbox("Reconstruction against", disentanglement, key="met_dis_metric")
    scatter(c2, table, SCORES["reconstruction"][0], d, f"Reconstruction error vs {d}")
else:
    c2.info("No evaluated run has disentanglement metrics (they need a ground-truth data set such as SynthFaces).")
if running := [r.name for r in runs if evaluation_running(r)]:
    say("caption", "Still evaluating: {runs}.", runs=", ".join(running))


def leaderboard(groups: list[Group]) -> None:
    st.subheader("Leaderboard")
    dataset = st.selectbox("Data set", sorted({g.dataset for g in groups}), key="met_lb_dataset")
    shown = [g for g in groups if g.dataset == dataset]
    present = [label for label in LABELS if any(g.scores[label] is not None for g in shown)]
    if not present:
        say("info", "No evaluated run on {dataset} has a score yet.", dataset=dataset)
        return
    dci = SCORES["dci"][0]
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    by = c1.selectbox("Sort by", present, index=present.index(dci) if dci in present else 0, key="met_lb_sort")
    descending = c2.toggle("Highest first", value=True, key="met_lb_descending")
    rows = leaderboard_rows(sort_groups(shown, by, descending), present)
    # so that the table fits the page: the data set is the one chosen above, and a ± column that no row fills (one
    # seed each) is left out
    columns = [column for label in present for column in (label, f"{label} ±")
               if column == label or any(row[column] is not None for row in rows)]
    st.dataframe(rows, hide_index=True, column_order=["family", "hyper-parameters", "seeds", "step", *columns],
                 column_config={label + spread: st.column_config.NumberColumn(SHORT.get(label, label) + spread,
                                                                             help=label + spread,
                                                                             format=score_format(label))
                                for label in present for spread in ("", " ±")})
    st.caption("One row per model family, data set, hyper-parameters (the settings that differ from the family's "
               "and the network preset's defaults, seeds and logging left out) and evaluated step. Each score is "
               "the mean over the row's seeds, with their standard deviation in its ± column (shown where a row has "
               "more than one seed). Click a column heading to sort by it.")
    for g in shown:
        if g.note:
            say("caption", "**{run}** has a row of its own: {error}", run=g.runs[0], error=g.note)

    reconstruction = [label for label in (SCORES["reconstruction"][0], SCORES["likelihood"][0]) if label in present]
    disentanglement = [label for label in DISENTANGLEMENT if label in present]
    if not reconstruction or not disentanglement:
        say("info", "The scatter needs a reconstruction score (MSE or IWAE) and a disentanglement metric (computed on "
                    "data sets with ground-truth factors, such as SynthFaces and dSprites); the runs on {dataset} do "
                    "not have both.", dataset=dataset)
        return
    c1, c2 = st.columns(2)
    x = c1.selectbox("Reconstruction", reconstruction, key="met_lb_x")
    y = c2.selectbox("Disentanglement", disentanglement, key="met_lb_y")
    points = scatter_points(shown, x, y)
    if len(points) < 2:
        say("info", ("One group only" if points else "No group") + " has both {x} and {y} on {dataset}: nothing to "
                    "compare yet.", x=x, y=y, dataset=dataset)
        return
    st.plotly_chart(px.scatter(chart_rows(points), x=x, y=y, error_x=f"{x} ±", error_y=f"{y} ±", color="family",
                               hover_name="hyper-parameters", hover_data=["seeds"],
                               title=f"{x} vs {y} on {chart_text(dataset)}: mean ± std over seeds"), width="stretch")


st.divider()
leaderboard(group_runs(runs, table))
