"""Settings: dataclass fields that carry their default, valid range and help, and the checks built from them.

A config section is a dataclass whose fields are made with `setting(...)`. Everything that shows or parses a
setting (the CLI's options, the Train page's widgets, JSON loading, validation) reads the field's metadata, so a
default, a range or a help text is written once. Every check fails with one message format, wherever the value
came from: `loss.beta = -4.0: must be between 0 and 1000 (--beta)`.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence, get_type_hints


class ConfigError(ValueError):
    """A config value is missing, of the wrong type or out of range; the message names the field and the fix."""


@dataclass(frozen=True)
class Spec:
    """What a setting is: its help, its valid values, and how it is shown on the command line and the page."""

    help: str
    label: str  # short human name, for the Train page
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    choices: Callable[[], Sequence[str]] | Sequence[str] | None = None  # a callable reads a registry when asked
    flag: str | None = None  # command-line option; None: not on the command line
    step: float | None = None  # the Train page's +/- step
    pattern: str | None = None  # a free string value must match this regular expression (whole value)
    forms: str = ""  # the valid forms of a pattern setting in words, e.g. "auto, cpu, cuda, cuda:N or mps"

    def options(self) -> tuple[str, ...] | None:
        """The allowed values of a choice setting, or None for a free value."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def rule(self) -> str:
        """The valid values in words, as the error message and the help text say them."""
        if (options := self.options()) is not None:
            return "use one of " + ", ".join(options)
        if self.pattern is not None:
            return f"use {self.forms or self.pattern}"
        if self.low is not None and self.high is not None:
            return f"must be between {self.low:g} and {self.high:g}"
        if self.low is not None:
            return f"must be at least {self.low:g}"
        if self.high is not None:
            return f"must be at most {self.high:g}"
        return ""


def setting(default: Any, help: str, *, label: str | None = None, low: float | None = None,
            high: float | None = None, choices=None, flag: str | None = "", step: float | None = None,
            pattern: str | None = None, forms: str = ""):
    """A dataclass field with its spec. `flag=""` derives the option from the field name; `flag=None` keeps the
    setting off the command line (it is still read from config.json). `pattern` (a regular expression the whole
    value must match, described in words by `forms`) restricts a free string."""
    spec = Spec(help, label or help.split(";")[0].split(" (")[0], low, high, choices, flag, step, pattern, forms)
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class Setting:
    """One field of one section, addressed as `section.name` (`name` alone for top-level fields)."""

    section: str
    name: str
    type: type
    optional: bool  # None is a valid value (e.g. "the model family's default")
    default: Any
    spec: Spec

    @property
    def key(self) -> str:
        """The dotted name options and error messages address this setting by, e.g. 'loss.beta'."""
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def flag(self) -> str | None:
        """The command-line option, e.g. '--beta' (from the name unless the spec gives one); None: not on the CLI."""
        if self.spec.flag is None:
            return None
        return self.spec.flag or "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """Raise ConfigError unless `value` is of this setting's type and in its range."""
        if value is None:
            if self.optional:
                return
            self.fail(value, "must be given")
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            self.fail(value, f"expected {self.type.__name__}")
        if self.type is float and not math.isfinite(value):
            self.fail(value, "must be a finite number")
        options = self.spec.options()
        if options is not None and value not in options:
            self.fail(value, self.spec.rule())
        if self.spec.pattern is not None and not re.fullmatch(self.spec.pattern, value, re.ASCII):
            self.fail(value, self.spec.rule())
        if self.type in (int, float) and ((self.spec.low is not None and value < self.spec.low)
                                          or (self.spec.high is not None and value > self.spec.high)):
            self.fail(value, self.spec.rule())

    def fail(self, value: Any, why: str) -> None:
        """Raise the one ConfigError format: `key = value: why (--flag)`."""
        where = f" ({self.flag})" if self.flag else ""
        raise ConfigError(f"{self.key} = {value!r}: {why}{where}")


_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}


def settings_of(cls: type, section: str = "") -> Iterator[Setting]:
    """The settings of dataclass `cls` (fields made with `setting`), in declaration order."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "spec" not in f.metadata:
            continue
        text = str(hints[f.name]) if not isinstance(hints[f.name], type) else hints[f.name].__name__
        base = text.replace("typing.Optional[", "").split(" | ")[0].split("[")[0].rstrip("]")
        yield Setting(section, f.name, _SCALARS[base], "None" in text, f.default, f.metadata["spec"])


def check_section(obj: Any, section: str = "") -> None:
    """Check every setting of the dataclass instance `obj`."""
    for s in settings_of(type(obj), section):
        s.check(getattr(obj, s.name))


def from_plain(cls: type, data: Any, where: str):
    """Build dataclass `cls` from parsed JSON, refusing unknown keys, missing required keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(map(str, unknown))}")
    hints = get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing key {f.name!r}")
            continue
        kwargs[f.name] = _plain_value(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def _plain_value(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return from_plain(hint, value, where)
    text = str(hint)
    if text.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value):
            raise ConfigError(f"{where}: expected a list of integers")
        return tuple(value)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{where}: must not be null")
    typ = _SCALARS[text.split(" | ")[0]] if not isinstance(hint, type) else hint
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}")
    return value
