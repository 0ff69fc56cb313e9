"""Verification: "same person or not?" from a run's latent codes, against an end-to-end CNN (RUN/verification.json)."""
import plotly.express as px
import streamlit as st

from core.metrics.verification import load_verification
from core.metrics.verification_job import (start_verification, verification_log, verification_running,
                                           verification_stage)
from core.metrics.verification_tables import (REPRESENTATIONS, SCORE_LABELS, best_rows, example_rows,
                                              pair_image_index, result_rows, roc_rows, verifiable_runs)
from core.runs.folder import list_runs
from dashboard.common import load_data_or_none, show_grid, start_background
from dashboard.text import plain, user_errors

POLL_S = 2
OUTCOMES = {"false accept": "different people the score calls the same (most confident first)",
            "false reject": "one person the score calls two (most confident first)",
            "true accept": "one person, accepted", "true reject": "different people, rejected"}

st.title("Verification")
st.caption("Same person or not? Pairs of faces of people held out from everything trained here are compared by "
           "their latent codes (cosine and Euclidean, raw and whitened, and a learned comparison) and by a small "
           "identity CNN trained end to end on the training people. 10 person-disjoint folds; AUC, accuracy at the "
           "threshold chosen on the other folds, and TAR at FAR = 1 %.")

with user_errors():
    offered, refused = verifiable_runs(list_runs())
if refused:
    with st.expander(f"Not offered: {len(refused)} run(s) whose data set has no people (or no checkpoint)"):
        st.text("\n".join(f"{name}: {why}" for name, why in refused))
if not offered:
    st.info("No run can be verified: verification needs a trained run on a data set with person identities "
            "(SynthFaces, CelebA with identity_CelebA.txt, or LFW).")
    st.stop()
names = [r.name for r in offered]
wanted = st.query_params.get("run", st.session_state.get("run_name"))
name = st.sidebar.selectbox("Run", names, index=names.index(wanted) if wanted in names else 0, key="ver_picker")
st.session_state["run_name"] = name
st.query_params["run"] = name
run = offered[names.index(name)]


@st.fragment(run_every=POLL_S)
def job_panel(run) -> None:
    running = verification_running(run)
    was_running = st.session_state.get("ver_running") == run.name
    st.session_state["ver_running"] = run.name if running else None
    if was_running and not running:
        st.rerun()  # it just ended: redraw the page with the new verification.json
    doc = load_verification(run)
    if running:
        stage, stages, what = verification_stage(run) or (1, 4, "starting")
        st.progress((stage - 1) / stages, text=f"Verifying {plain(run.name)} in the background (fast mode) · "
                                               f"step {stage} of {stages}: {what}")
    elif doc is None or doc.get("step") != run.checkpoint_step():
        label = "Verify" if doc is None else "Verify again (the checkpoint is newer than the results)"
        st.button(f"{label}: {run.name} (fast mode, in the background)", key="ver_start",
                  icon=":material/play_arrow:", on_click=start_background,
                  args=(start_verification, run, "verifying", "ver_flash"))
    if flash := st.session_state.pop("ver_flash", None):
        getattr(st, flash[0])(plain(flash[1]))
    if log := verification_log(run):
        with st.expander("Verification log (verify.log)", expanded=not running and "Error" in log):
            st.code(log, language=None)


job_panel(run)
doc = load_verification(run)
if doc is None:
    st.info(f"**{plain(run.name)}** has no verification.json yet. Click **Verify** above, or run "
            f"`python -m core verify {run.name} --fast` from the repository root (without `--fast` for the full "
            "sample counts and a 1,500-step CNN).")
    st.stop()

p = doc["protocol"]
st.subheader(plain(f"{doc['run']}: {doc['model']} on {doc['dataset']}, {doc['latent_dim']} dims, step {doc['step']:,}"))
st.caption(plain(f"{p['pairs']} pairs, {p['folds']} folds, {p['test_people']} test people, "
                 f"{p['training_people']} training people. {p['description']}."))
if p.get("encoder_saw_test_people"):
    st.warning("The encoder saw other images of the test people (their training-split images), so the latent codes "
               "are not identity-disjoint here; the comparisons and the CNN never saw them.")
NUMBERS = ("AUC", "AUC std", "accuracy", "accuracy std", "TAR@FAR=1%", "TAR std")
st.dataframe([{k: v for k, v in row.items() if k != "run"} for row in result_rows(doc)], hide_index=True,
             column_config={c: st.column_config.NumberColumn(format="%.3f") for c in NUMBERS})

st.subheader("ROC curves")
others = [r.name for r in offered if r.name != run.name and load_verification(r) is not None]
c1, c2, c3 = st.columns([2, 2, 1])
score = c1.selectbox("Score", list(SCORE_LABELS), format_func=SCORE_LABELS.get, index=4, key="ver_score")
overlay = c2.multiselect("Overlay runs", others, key="ver_overlay")
log_far = c3.toggle("Log FAR axis", value=True, key="ver_log")
docs = [doc] + [d for r in offered if r.name in overlay and (d := load_verification(r)) is not None]
fig = px.line(roc_rows(docs, score), x="FAR", y="TAR", color="curve", log_x=log_far, range_y=[0, 1.02],
              title=f"Mean ROC over the folds: {SCORE_LABELS[score]}")
fig.add_vline(x=0.01, line_dash="dot", annotation_text="FAR 1 %")
st.plotly_chart(fig, width="stretch")

if len(docs) > 1:
    st.dataframe(best_rows(docs), hide_index=True)

st.subheader("Example pairs")
keys = list(doc.get("examples", {}))
if not keys:
    st.info("This verification.json has no example pairs.")
    st.stop()
key = st.radio("Representation", keys, horizontal=True, key="ver_examples",
               format_func=lambda k: f"{REPRESENTATIONS.get(k.split('/')[0], k)} ({k.split('/')[1]} dims)")
trust = (doc.get("cnn") or {}).get("calibration", {}).get("auc")
st.caption(f"Scored by {SCORE_LABELS.get(doc['examples'][key]['score'], 'the best score')} (the best AUC), each pair "
           "judged at its fold's threshold. Identity distance: the E2E CNN's, 0 = a typical same-person pair, "
           "1 = a typical different-person pair" + (f" (its AUC on held-out pairs: {trust:.3f}; near 0.5 the scale "
                                                     "means nothing)." if isinstance(trust, float) else "."))
rows = example_rows(doc, key)
data = load_data_or_none(run, "the example pairs' faces")
for outcome, what in OUTCOMES.items():
    chosen = [r for r in rows if r["outcome"] == outcome]
    st.markdown(f"**{outcome.capitalize()}s** ({len(chosen)} shown): {what}")
    if not chosen:
        continue
    if data is not None:
        show_grid(data.images(pair_image_index(chosen)), ncol=6,
                  caption="three pairs a row, side by side, in the order of the table below")
    st.dataframe([{k: v for k, v in r.items() if k != "outcome"} for r in chosen], hide_index=True)
