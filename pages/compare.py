"""Compare: the same faces reconstructed by several runs, next to each run's settings and final losses."""
from pathlib import Path

import streamlit as st

from core.config import DataConfig
from core.runs.folder import Run, list_runs
from core.runs.summary import summarize
from dashboard.common import decode_codes, encode_faces, load_data_or_none, pick_faces, show_strip
from dashboard.text import md, say

st.title("Compare runs")
runs = {r.name: r for r in list_runs() if r.checkpoint_path.is_file()}
if not runs:
    st.info("No trained runs yet: train one on the **Train** page, or copy a run folder into `checkpoints/`.")
    st.stop()
current = st.query_params.get("run", st.session_state.get("run_name"))
default = [current] if current in runs else []
default += [name for name in runs if name not in default][:2 - len(default)]
chosen = [runs[name] for name in st.multiselect("Runs (the first one's data set is used)", list(runs), default=default,
                                                key="cmp_runs")]
if not chosen:
    st.info("Choose one or more runs.")
    st.stop()


@st.cache_data(max_entries=64, show_spinner=False)
def table_row(path: str, files: tuple) -> dict:
    """A run's line of the table, keyed on the times and sizes of the files it is read from: a long run's
    metrics.jsonl is megabytes, and a rerun that changes none of them reads none of them again."""
    run = Run(path)
    config, summary = run.config, summarize(run)
    tenth = lambda x: None if x is None else round(x, 1)  # noqa: E731
    return {"run": run.name, "model": config.model, "β": config.loss.beta, "latent dims": config.arch.latent_dim,
            "preset": config.arch.preset, "data set": config.data.dataset, "steps": summary.step,
            "train loss": tenth(summary.loss), "train recon": tenth(summary.recon), "train KL": tenth(summary.kl),
            "val −ELBO": tenth(summary.val_neg_elbo)}


def files_of(run: Run) -> tuple:
    """(modification time, size) of each file a table row is read from; None for one that is not there."""
    def stamp(path: Path) -> tuple[int, int] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    return tuple(stamp(run.path / name) for name in ("config.json", "metrics.jsonl", "status.json"))


def images_of(data: DataConfig) -> tuple:
    """What decides which image sits at each index: the data set and its folder (not the split seed)."""
    return data.dataset, str(Path(data.root).resolve()) if data.root else None


st.dataframe([table_row(str(r.path), files_of(r)) for r in chosen], hide_index=True)

reference = chosen[0]
same = [r for r in chosen if images_of(r.config.data) == images_of(reference.config.data)]
skipped = [r for r in chosen if r not in same]
if skipped:
    say("warning", "Skipped {skipped}: trained on a different data set than {reference!r} ({dataset}), so the same "
                   "face indices would be different images. Put one of them first to compare runs on its data set.",
        skipped=", ".join(repr(r.name) for r in skipped), reference=reference.name,
        dataset=reference.config.data.dataset)
dataset = load_data_or_none(reference, "reconstructing faces (the table above needs no data)")
if dataset is None:
    st.stop()

index = pick_faces(dataset.indices("test"), len(dataset), key="cmp_faces", default_n=8, max_n=16)
show_strip(dataset.images(index), ncol=len(index),
           caption=f"originals (data set indices {', '.join(map(str, index))})")
for run in same:
    config = run.config
    show_strip(decode_codes(run, encode_faces(run, dataset, index)), ncol=len(index),
               caption=md("{name} · {model} · β = {beta:g} · {dims} dims", name=run.name, model=config.model,
                          beta=config.loss.beta, dims=config.arch.latent_dim))
