"""Metrics: evaluate a run in the background and compare the scores of every evaluated run."""
import shlex

import plotly.express as px
import streamlit as st

from core.metrics.background import evaluation_progress, evaluation_running, start_evaluation
from core.metrics.evaluate import load_eval
from core.metrics.tables import (DISENTANGLEMENT, SCORES, comparison_rows, edit_rows, judge_rows, probe_rows,
                                 score_rows, skipped_ground_truth)
from core.runs.folder import list_runs
from dashboard.charts import chart_rows
from dashboard.common import code, md, pick_run, plain, say, start_background, user_errors

POLL_S = 2

st.title("Metrics")
run = pick_run(key="met")
if run is None:
    st.stop()


@st.fragment(run_every=POLL_S)
def job_panel(run) -> None:
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
    if p.log:
        with st.expander("Evaluation log (evaluate.log)", expanded=not p.running and "Error" in p.log):
            st.code(p.log, language=None)


say("caption", "Fast mode takes a few minutes on a CPU (noisier estimates, same definitions). For the full settings "
               "run {command} in a terminal; this page shows its results too.",
    command=code(f"python -m core evaluate {shlex.quote(run.name)}"))
job_panel(run)

doc = load_eval(run)
if doc is None:
    say("info", "**{name}** has no eval.json yet. Click **Evaluate** above, or run {command} from the repository "
                "root.", name=run.name, command=code(f"python -m core evaluate {shlex.quote(run.name)} --fast"))
else:
    st.subheader(md("{name}: {model} on {dataset}, step {step:,}", name=run.name, model=doc["model"],
                    dataset=doc["dataset"], step=doc["step"]))
    st.dataframe(score_rows(doc), hide_index=True, column_config={"score": st.column_config.NumberColumn(format="%.4f")})
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
        aucs = ", ".join(f"{name} {auc:.3f}" for name, auc in edits["judge"]["aucs"].items()
                         if name in {r["attribute"] for r in rows} and auc is not None)
        say("caption", "Judge: a small CNN trained on the {trained_on}; held-out AUC {aucs}. Flip rate at α = 0 is its "
                       "false-positive rate on reconstructions; dependency is the mean change of its probabilities "
                       "for the other attributes; pixel change is the mean |edit − reconstruction|.",
            trained_on=edits["judge"]["trained_on"], aucs=aucs)
    elif "skipped" in edits:
        say("info", "Edit quality: skipped: {reason}", reason=edits["skipped"])

st.divider()
st.subheader("All evaluated runs")
with user_errors():
    table = comparison_rows(list_runs())
if not table:
    st.info("No run has an eval.json yet.")
    st.stop()
st.dataframe(table, hide_index=True)
scores = [label for label, _ in SCORES.values()] + ["mean flip rate at largest α"]
present = [s for s in scores if any(row[s] is not None for row in table)]
c1, c2 = st.columns(2)
y = c1.selectbox("β against", present, key="met_beta_metric")
c1.plotly_chart(px.scatter(chart_rows(table), x="β", y=y, hover_name="run", color="model", title=f"β vs {y}"),
                width="stretch")
disentanglement = [s for s in DISENTANGLEMENT if s in present]
if disentanglement:
    d = c2.selectbox("Reconstruction against", disentanglement, key="met_dis_metric")
    c2.plotly_chart(px.scatter(chart_rows(table), x=SCORES["reconstruction"][0], y=d, hover_name="run", color="model",
                               title=f"Reconstruction error vs {d}"), width="stretch")
else:
    c2.info("No evaluated run has disentanglement metrics (they need a ground-truth data set such as SynthFaces).")
if running := [r.name for r in list_runs() if evaluation_running(r)]:
    say("caption", "Still evaluating: {runs}.", runs=", ".join(running))
