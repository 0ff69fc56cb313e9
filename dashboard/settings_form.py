"""Train-page widgets built from core.config's settings: each widget's label, help, default and choices come from
the setting, and nothing is clamped here, so an out-of-range value reaches RunConfig's check and its message."""
from __future__ import annotations

from math import floor, log10
from typing import Any

import streamlit as st

from core.config import all_settings
from core.settings import Setting

SETTINGS = {s.key: s for s in all_settings()}


def setting_input(key: str, value: Any, widget_key: str, container=st, **kwargs) -> Any:
    """A widget for setting `key` showing `value`; returns what the user entered (None for an empty optional
    text). Numbers are free-typed: the range is in the help text and enforced by the config check on Start."""
    s: Setting = SETTINGS[key]
    help_text = s.spec.help + (f" ({s.spec.rule()})" if s.spec.rule() and not s.spec.options() else "")
    label = s.spec.label
    if (options := s.spec.options()) is not None:
        return container.selectbox(label, options, index=list(options).index(value) if value in options else 0,
                                   key=widget_key, help=help_text, **kwargs)
    if s.type is bool:
        return container.checkbox(label, value=bool(value), key=widget_key, help=help_text, **kwargs)
    if s.type is int:
        return int(container.number_input(label, value=int(value), step=int(s.spec.step or 1), key=widget_key,
                                          help=help_text, **kwargs))
    if s.type is float:
        return float(container.number_input(label, value=float(value), step=float(s.spec.step or _step(value)),
                                            format="%g", key=widget_key, help=help_text, **kwargs))
    text = container.text_input(label, value=value or "", key=widget_key, help=help_text, **kwargs).strip()
    return text or (None if s.optional else text)


def _step(value: float) -> float:
    """A +/- step of about a tenth of the value's magnitude (1e-4 for a learning rate of 5e-4)."""
    if not value:
        return 0.1
    return 10 ** floor(log10(abs(value)))
