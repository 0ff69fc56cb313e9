"""Plotly figures of training metrics, built from the records of `Run.metrics()`: drawing only.

Every builder takes {run name: records}, so one run and an overlay of several (to compare β values) are drawn
by the same code, one colour per run. Plotly reads a few HTML tags in every text it draws (<b>, <br>, <a href>
...), so run names, labels and any other user text go into a figure through chart_text(), as typed.
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.models.family import FAMILIES
from core.objectives.regulariser import REGULARISERS
from core.runs.labels import DimLabel, dim_name

TRAIN_TERMS = (("loss", "total loss"), ("recon", "reconstruction"), ("kl", "KL"))
VAL_TERMS = (("neg_elbo", "negative ELBO"), ("recon", "reconstruction"), ("kl", "KL"))
MAX_COLUMNS = 400  # heatmap columns: more than a screen shows only makes the browser slow
HEIGHT = 330
# Plotly picks at most ten ticks and rounds their spacing to 1, 2 or 5 times a power of ten, so over fewer steps than
# this (one logged step: an axis of its own making, 9 to 11) it ticks between steps: 9.5, 10.5 ...
WHOLE_STEPS = 10


def chart_text(text: Any) -> str:
    """User text (a run name, a dim label, an attribute name) for a Plotly title, legend, axis or hover: its
    HTML escaped, so Plotly shows it as typed instead of reading tags or links in it."""
    return html.escape(str(text), quote=False)


def chart_rows(rows: list[dict]) -> list[dict]:
    """Table rows for plotly.express, with every text value passed through chart_text (numbers unchanged)."""
    return [{key: chart_text(value) if isinstance(value, str) else value for key, value in row.items()}
            for row in rows]


def _step_ticks(fig: go.Figure, steps: list[int]) -> None:
    """Tick the step axes of `fig` at whole steps when the logged `steps` span fewer than WHOLE_STEPS."""
    if steps and max(steps) - min(steps) < WHOLE_STEPS:
        fig.update_xaxes(dtick=1)


def _curves(series: dict[str, list[dict]], terms: tuple[tuple[str, str], ...], log_y: bool, title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(terms), subplot_titles=[label for _, label in terms])
    for i, (run, records) in enumerate(series.items()):
        name = chart_text(run)
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        steps = [r["step"] for r in records]
        mode = "lines+markers" if len(steps) < 30 else "lines"  # a few validation points need visible markers
        for col, (key, label) in enumerate(terms, start=1):
            fig.add_trace(go.Scatter(x=steps, y=[r.get(key) for r in records], name=name, legendgroup=name,
                                     showlegend=col == 1, line=dict(color=colour), mode=mode,
                                     hovertemplate=f"{name}<br>step %{{x}}<br>{label} %{{y:.4g}}<extra></extra>"),
                          row=1, col=col)
    fig.update_xaxes(title_text="step")
    _step_ticks(fig, [r["step"] for records in series.values() for r in records])
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_layout(title=title, height=HEIGHT, margin=dict(t=70, b=40, l=50, r=20),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def train_curves(series: dict[str, list[dict]], log_y: bool = False) -> go.Figure:
    """Total loss, reconstruction and KL against step (means over each logging interval)."""
    return _curves(series, TRAIN_TERMS, log_y, "Training losses (nats per image)")


def regulariser_terms(series: dict[str, list[dict]]) -> tuple[tuple[str, str], ...]:
    """The regularisers' terms the records hold (β-TCVAE's mi / tc / dim_kl, FactorVAE's tc / disc_loss, ...), from
    the family registry, in the order the families list them."""
    present = {key for records in series.values() for r in records[-1:] for key in r}
    names = dict.fromkeys(name for family in FAMILIES for reg in family.regularisers for name in REGULARISERS[reg].terms)
    return tuple((name, name.replace("_", " ")) for name in names if name in present)


def regulariser_curves(series: dict[str, list[dict]], log_y: bool = False) -> go.Figure | None:
    """The regularisers' terms against step, one panel each; None when no run logged any."""
    terms = regulariser_terms(series)
    return _curves(series, terms, log_y, "Regulariser terms (per image)") if terms else None


def val_curves(series: dict[str, list[dict]], log_y: bool = False) -> go.Figure:
    """Negative ELBO, reconstruction and KL on the fixed validation subset."""
    return _curves(series, VAL_TERMS, log_y, "Validation (fixed subset)")


def kl_heatmap(records: list[dict], labels: dict[int, DimLabel] | None = None, title: str = "") -> go.Figure:
    """Per-dimension KL over training: dims as rows, logged steps as columns (thinned to MAX_COLUMNS)."""
    records = [r for r in records if isinstance(r.get("kl_dims"), list)]
    if len(records) > MAX_COLUMNS:
        records = [records[i] for i in np.linspace(0, len(records) - 1, MAX_COLUMNS).round().astype(int)]
    kl = np.array([r["kl_dims"] for r in records], dtype=float).T if records else np.zeros((0, 0))
    names = [chart_text(dim_name(d, labels or {})) for d in range(kl.shape[0])]
    fig = go.Figure(go.Heatmap(z=kl, x=[r["step"] for r in records], y=names, colorscale="Viridis",
                               colorbar=dict(title="nats"),
                               hovertemplate="%{y}<br>step %{x}<br>KL %{z:.3f} nats<extra></extra>"))
    fig.update_layout(title=chart_text(title or "KL per latent dimension"), xaxis_title="step",
                      height=max(HEIGHT, 14 * len(names) + 120), margin=dict(t=50, b=40, l=50, r=20),
                      yaxis=dict(autorange="reversed", type="category"))
    _step_ticks(fig, [r["step"] for r in records])
    return fig


def edit_tradeoff(rows: list[dict], alpha: float, attribute: str) -> go.Figure:
    """An attribute vector's evaluated edits against α (rows of core.metrics.tables.edit_rows for one attribute and
    vector): the judge's flip rate, the mean pixel change and (where the data set knows its people) how far the
    edit moved the person, with the α now chosen as a dotted line, so a user sees where the edit sits between "not
    yet added" and "the face falls apart" or "someone else"."""
    alphas = [r["α"] for r in rows]
    keys = ["flip rate", "pixel change", *(["identity change"] if all("identity change" in r for r in rows) else [])]
    fig = go.Figure([go.Scatter(x=alphas, y=[r[key] for r in rows], name=key, mode="lines+markers") for key in keys])
    fig.add_vline(x=alpha, line_dash="dot", annotation_text=f"α = {alpha:+.1f}")
    identity = [r.get("identity change", 0) for r in rows]  # may leave [0, 1] (a rescaled distance)
    fig.update_layout(title=chart_text(f"{attribute}: evaluated edits against α"), xaxis_title="α",
                      yaxis=dict(range=[min(0, *identity), max(1.02, *identity)],
                                 title="share of faces / mean |Δpixel| / identity (0 same, 1 another person)"),
                      height=HEIGHT,
                      margin=dict(t=50, b=40, l=50, r=20))
    return fig
