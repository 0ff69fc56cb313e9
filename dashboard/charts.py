"""Plotly figures of training metrics, built from the records of `Run.metrics()`: drawing only.

Every builder takes {run name: records}, so one run and an overlay of several (to compare β values) are drawn
by the same code, one colour per run.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.runs.labels import DimLabel, dim_name

TRAIN_TERMS = (("loss", "total loss"), ("recon", "reconstruction"), ("kl", "KL"))
VAL_TERMS = (("neg_elbo", "negative ELBO"), ("recon", "reconstruction"), ("kl", "KL"))
MAX_COLUMNS = 400  # heatmap columns: more than a screen shows only makes the browser slow
HEIGHT = 330


def _curves(series: dict[str, list[dict]], terms: tuple[tuple[str, str], ...], log_y: bool, title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(terms), subplot_titles=[label for _, label in terms])
    for i, (name, records) in enumerate(series.items()):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        steps = [r["step"] for r in records]
        mode = "lines+markers" if len(steps) < 30 else "lines"  # a few validation points need visible markers
        for col, (key, label) in enumerate(terms, start=1):
            fig.add_trace(go.Scatter(x=steps, y=[r.get(key) for r in records], name=name, legendgroup=name,
                                     showlegend=col == 1, line=dict(color=colour), mode=mode,
                                     hovertemplate=f"{name}<br>step %{{x}}<br>{label} %{{y:.4g}}<extra></extra>"),
                          row=1, col=col)
    fig.update_xaxes(title_text="step")
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_layout(title=title, height=HEIGHT, margin=dict(t=70, b=40, l=50, r=20),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def train_curves(series: dict[str, list[dict]], log_y: bool = False) -> go.Figure:
    """Total loss, reconstruction and KL against step (means over each logging interval)."""
    return _curves(series, TRAIN_TERMS, log_y, "Training losses (nats per image)")


def val_curves(series: dict[str, list[dict]], log_y: bool = False) -> go.Figure:
    """Negative ELBO, reconstruction and KL on the fixed validation subset."""
    return _curves(series, VAL_TERMS, log_y, "Validation (fixed subset)")


def kl_heatmap(records: list[dict], labels: dict[int, DimLabel] | None = None, title: str = "") -> go.Figure:
    """Per-dimension KL over training: dims as rows, logged steps as columns (thinned to MAX_COLUMNS)."""
    records = [r for r in records if isinstance(r.get("kl_dims"), list)]
    if len(records) > MAX_COLUMNS:
        records = [records[i] for i in np.linspace(0, len(records) - 1, MAX_COLUMNS).round().astype(int)]
    kl = np.array([r["kl_dims"] for r in records], dtype=float).T if records else np.zeros((0, 0))
    names = [dim_name(d, labels or {}) for d in range(kl.shape[0])]
    fig = go.Figure(go.Heatmap(z=kl, x=[r["step"] for r in records], y=names, colorscale="Viridis",
                               colorbar=dict(title="nats"),
                               hovertemplate="%{y}<br>step %{x}<br>KL %{z:.3f} nats<extra></extra>"))
    fig.update_layout(title=title or "KL per latent dimension", xaxis_title="step",
                      height=max(HEIGHT, 14 * len(names) + 120), margin=dict(t=50, b=40, l=50, r=20),
                      yaxis=dict(autorange="reversed", type="category"))
    return fig
