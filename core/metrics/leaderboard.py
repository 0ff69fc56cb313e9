"""The leaderboard: evaluated runs grouped by family, data set and hyper-parameters, each score summarised over the
group's seeds (mean, standard deviation, median, min, max). Numbers, not text: the Metrics page sorts and plots
them, a benchmark prints them with `spread_text`."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import Any

from core.config import PRESETS, ConfigError, RunConfig, all_settings, option_value
from core.metrics.tables import SCORES, comparison_rows
from core.runs.folder import Run, RunError

LABELS = [label for label, _ in SCORES.values()]
# Settings that are no hyper-parameter of the experiment: the seeds are what a group summarises over; the family and
# the data set are columns of their own (and a conditional family's cond_dim is filled in from the data set); the
# rest say where a run trained, how fast and how often it logged, validated, sampled and saved, none of which
# changes what it learns beyond the noise that the seeds already vary.
NOT_HYPERPARAMETERS = frozenset({
    "model", "data.dataset", "arch.cond_dim", "data.seed", "train.seed", "train.device", "train.threads",
    "train.mode", "train.compile", "train.log_every", "train.val_every", "train.val_images", "train.checkpoint_every",
    "train.sample_every"})
UNREADABLE = "config.json unreadable"


@dataclass(frozen=True)
class Spread:
    """One score over the seeds of a group that have it: how many, their mean, sample standard deviation (None for
    a single seed: one value says nothing about the spread), median, min and max."""

    n: int
    mean: float
    std: float | None
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        """The spread of `values`; None when there are none."""
        if not values:
            return None
        return cls(len(values), statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None,
                   statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Group:
    """The runs of one family on one data set with the same hyper-parameters, evaluated at the same step, and each
    score's spread over them (None: no run of the group has that score). `note` says why a run stands alone."""

    family: str
    dataset: str
    hparams: str
    step: int
    runs: tuple[str, ...]
    scores: dict[str, Spread | None]
    note: str = ""

    @property
    def seeds(self) -> int:
        """How many runs (one per seed) the group holds."""
        return len(self.runs)


def hyperparameters(config: RunConfig) -> tuple[tuple[str, Any], ...]:
    """The settings of `config` that differ from its family's and network preset's defaults, as (option, value)
    sorted by option, leaving out NOT_HYPERPARAMETERS: equal for two runs exactly when they train the same model the
    same way. A setting without a command-line option (set in Python or config.json) is named by its key."""
    base = RunConfig(name=config.name, model=config.model, arch=replace(PRESETS[config.arch.preset]))
    found = []
    for s in all_settings():
        # the data root only says where a copy of CelebA or LFW lives; an image folder's root is the data set
        if s.key in NOT_HYPERPARAMETERS or s.key == "data.root" and config.data.dataset != "folder":
            continue
        value = option_value(config, s.key)
        if value != (s.default if s.key == "arch.preset" else option_value(base, s.key)):
            found.append((s.flag or s.key, value))
    if config.arch.channels != base.arch.channels:  # not a setting: only Python or a hand-edited config sets them
        found.append(("arch.channels", tuple(config.arch.channels)))
    return tuple(sorted(found))


def hyperparameter_text(options: tuple[tuple[str, Any], ...]) -> str:
    """hyperparameters(...) as one readable line, e.g. "--beta 4 --latent-dim 10 --preset tiny"."""
    def shown(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:g}"
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return " ".join(f"{name} {shown(value)}" for name, value in options) or "family defaults"


def group_runs(runs: list[Run], rows: list[dict] | None = None) -> list[Group]:
    """One Group per family, data set, hyper-parameters and evaluated step, over the runs that have an eval.json,
    sorted by data set, family and hyper-parameters. The step is part of the key so that a run evaluated halfway
    through training is not averaged with finished ones; hyper-parameters are compared as hyperparameter_text shows
    them (numbers to 6 significant digits). A run whose config.json cannot be read forms a group of
    its own (its error in `note`): it is listed, and it cannot hide or skew the others. `rows`: comparison_rows(runs)
    when the caller has them already."""
    by_name = {run.name: run for run in runs}
    members: dict[tuple, list[dict]] = {}
    notes = {}
    for row in comparison_rows(runs) if rows is None else rows:
        try:
            hparams = hyperparameter_text(hyperparameters(by_name[row["run"]].config))
        except (ConfigError, RunError) as e:
            hparams = f"{UNREADABLE}: {row['run']}"
            notes[hparams] = str(e)
        members.setdefault((row["data set"], row["model"], hparams, row["step"]), []).append(row)
    return [Group(family, dataset, hparams, step, tuple(r["run"] for r in group),
                  {label: Spread.of([r[label] for r in group if r[label] is not None]) for label in LABELS},
                  notes.get(hparams, ""))
            for (dataset, family, hparams, step), group in sorted(members.items(), key=lambda item: item[0])]


def sort_groups(groups: list[Group], label: str, descending: bool = True) -> list[Group]:
    """`groups` by the mean of score `label`; groups without that score last, in either direction."""
    scored = [g for g in groups if g.scores[label] is not None]
    return (sorted(scored, key=lambda g: g.scores[label].mean, reverse=descending)
            + [g for g in groups if g.scores[label] is None])


def leaderboard_rows(groups: list[Group], labels: list[str]) -> list[dict]:
    """Table rows: family, data set, hyper-parameters, seeds, step, and per score in `labels` its mean over the
    seeds and, in "<label> ±", their standard deviation (numbers, so that a table sorts them as numbers)."""
    rows = []
    for g in groups:
        row = {"family": g.family, "data set": g.dataset, "hyper-parameters": g.hparams, "seeds": g.seeds,
               "step": g.step}
        for label in labels:
            spread = g.scores[label]
            row[label] = None if spread is None else spread.mean
            row[f"{label} ±"] = None if spread is None else spread.std
        rows.append(row)
    return rows


def scatter_points(groups: list[Group], x: str, y: str) -> list[dict]:
    """One point per group that has both scores `x` and `y`: their means, and their standard deviations (0 for a
    single seed: no error bar) under "<label> ±", with the family, hyper-parameters and seeds to colour and label
    it."""
    return [{"family": g.family, "hyper-parameters": g.hparams, "seeds": g.seeds,
             x: g.scores[x].mean, f"{x} ±": g.scores[x].std or 0.0,
             y: g.scores[y].mean, f"{y} ±": g.scores[y].std or 0.0}
            for g in groups if g.scores[x] is not None and g.scores[y] is not None]


def spread_text(spread: Spread | None, centre: str = "median", digits: int = 3) -> str:
    """A spread as text with `digits` significant digits: centre "median" gives "0.512 (0.47–0.55)" (median, min–max),
    "mean" gives "0.512 ± 0.031" (mean ± standard deviation); a single seed gives its value alone, no score "–"."""
    def number(v: float) -> str:  # nats per image run to thousands: "-1770.5", not "-1.77e+03"
        return f"{v:.1f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"

    if spread is None:
        return "–"
    if spread.n == 1:
        return number(spread.mean)
    if centre == "mean":
        return f"{number(spread.mean)} ± {number(spread.std)}"
    return f"{number(spread.median)} ({number(spread.min)}–{number(spread.max)})"
