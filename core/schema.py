"""Schemas for untrusted JSON: small checkers of types, ranges, finite numbers and string lengths that
core.fileio's readers apply to each kind of file (status, metrics, labels, eval, process records, sidecars).
A mismatch raises `Invalid` naming where in the document and what is wrong; the readers turn it into
UntrustedFileError naming the file."""
from __future__ import annotations

import math
import re
from typing import Any, Callable

MAX_TEXT = 100_000  # default length limit of a string value


class Invalid(Exception):
    """What is wrong (`why`) where (`where`, a dotted path into the document, "" for the whole of it),
    with the offending value as `shown` text; UntrustedFileError outside."""

    def __init__(self, where: str, why: str, shown: str | None = None):
        place = " = ".join(filter(None, [where, shown]))
        super().__init__(f"{place}: {why}" if place else why)
        self.where, self.why = where, why

    @property
    def depth(self) -> int:
        """How deep in the document the problem is (OneOf reports the option that got furthest)."""
        return self.where.count(".") + self.where.count("[") + bool(self.where)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def path_at(where: str, key: Any) -> str:
    """The dotted / indexed path of `key` inside the document path `where`, for error messages."""
    return f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)


class Schema:
    """What one JSON value must be. `check(value, where)` returns the value (cleaned where the schema says so) or
    raises; `where` is the value's dotted path in the document, for the message."""

    def check(self, value: Any, where: str = "") -> Any:
        """The value, checked (see the class)."""
        raise NotImplementedError

    def fail(self, value: Any, where: str, why: str):
        """Raise the one error format: `where = value: why`."""
        raise Invalid(where, why, _show(value))


class Anything(Schema):
    """Any JSON value (still size-, depth- and number-checked by the parser)."""

    def check(self, value: Any, where: str = "") -> Any:
        """The value itself."""
        return value


ANY = Anything()


class Num(Schema):
    """A finite number (int or float, never a bool) between `low` and `high` (inclusive; None: unbounded)."""

    def __init__(self, low: float | None = None, high: float | None = None):
        self.low, self.high = low, high

    def check(self, value: Any, where: str = "") -> Any:
        """The number, or an error naming the rule it breaks."""
        if isinstance(value, bool) or not isinstance(value, self._types()):
            self.fail(value, where, f"expected {self._noun()}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(value, where, "expected a finite number")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            self.fail(value, where, f"must be between {self.low:g} and {self.high:g}" if None not in (self.low, self.high)
                      else f"must be at least {self.low:g}" if self.low is not None else f"must be at most {self.high:g}")
        return value

    def _types(self) -> tuple[type, ...]:
        return (int, float)

    def _noun(self) -> str:
        return "a number"


class Int(Num):
    """An integer between `low` and `high` (inclusive)."""

    def _types(self) -> tuple[type, ...]:
        return (int,)

    def _noun(self) -> str:
        return "an integer"


class Bool(Schema):
    """true or false."""

    def check(self, value: Any, where: str = "") -> Any:
        """The boolean."""
        if not isinstance(value, bool):
            self.fail(value, where, "expected true or false")
        return value


class Str(Schema):
    """A string of at most `max_len` characters, valid Unicode (no lone surrogates), optionally one of `choices` or
    matching the regular expression `pattern` (whole string)."""

    def __init__(self, max_len: int = MAX_TEXT, choices: tuple[str, ...] | None = None, pattern: str | None = None):
        self.max_len, self.choices = max_len, choices
        self.pattern = re.compile(pattern, re.ASCII) if pattern else None

    def check(self, value: Any, where: str = "") -> Any:
        """The string, or an error naming the rule it breaks."""
        if not isinstance(value, str):
            self.fail(value, where, "expected a string")
        if len(value) > self.max_len:
            self.fail(value, where, f"longer than {self.max_len} characters")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                self.fail(value, where, "not valid Unicode text (a lone surrogate)")
        if self.choices is not None and value not in self.choices:
            self.fail(value, where, "expected one of " + ", ".join(self.choices))
        if self.pattern is not None and not self.pattern.fullmatch(value):
            self.fail(value, where, f"does not match {self.pattern.pattern}")
        return value


class Nullable(Schema):
    """null, or what `inner` accepts."""

    def __init__(self, inner: Schema):
        self.inner = inner

    def check(self, value: Any, where: str = "") -> Any:
        """None, or the inner schema's value."""
        return None if value is None else self.inner.check(value, where)


class ListOf(Schema):
    """An array of `min_items` to `max_items` values, each as `item` says."""

    def __init__(self, item: Schema, min_items: int = 0, max_items: int = 1_000_000):
        self.item, self.min_items, self.max_items = item, min_items, max_items

    def check(self, value: Any, where: str = "") -> Any:
        """A new list of the checked items."""
        if not isinstance(value, list):
            self.fail(value, where, "expected an array")
        if not self.min_items <= len(value) <= self.max_items:
            self.fail(value, where, f"expected {self.min_items} to {self.max_items} items, got {len(value)}")
        return [self.item.check(v, path_at(where, i)) for i, v in enumerate(value)]


class Obj(Schema):
    """An object with known `fields` (key -> schema), of which `required` must be present. Other keys are checked
    with `extra` (default ANY: files may grow; None refuses them). With `drop_invalid`, a field that is not
    required and does not fit its schema is dropped (the record is cleaned) instead of refusing the whole object.
    `rule(obj)` may return a sentence saying what is wrong between fields (None: nothing)."""

    def __init__(self, fields: dict[str, Schema], required: tuple[str, ...] = (), extra: Schema | None = ANY,
                 drop_invalid: bool = False, rule: Callable[[dict], str | None] | None = None):
        self.fields, self.required, self.extra = fields, required, extra
        self.drop_invalid, self.rule = drop_invalid, rule

    def check(self, value: Any, where: str = "") -> Any:
        """A new dict of the checked (and, with drop_invalid, cleaned) fields."""
        if not isinstance(value, dict):
            self.fail(value, where, "expected an object")
        for key in self.required:
            if key not in value:
                raise Invalid(where, f"missing key {key!r}")
        out = {}
        for key, item in value.items():
            schema = self.fields.get(key, self.extra)
            if schema is None:
                raise Invalid(path_at(where, key), f"unknown key (known: {', '.join(self.fields)})")
            try:
                out[key] = schema.check(item, path_at(where, key))
            except Invalid:
                if self.drop_invalid and key not in self.required:
                    continue
                raise
        if self.rule is not None and (why := self.rule(out)):
            raise Invalid(where, why)
        return out


class MapOf(Schema):
    """An object used as a map: any keys that `key` accepts (default: short strings), at most `max_items`, each
    value as `value` says."""

    def __init__(self, value: Schema, key: Str | None = None, max_items: int = 100_000):
        self.value, self.key, self.max_items = value, key or Str(200), max_items

    def check(self, value: Any, where: str = "") -> Any:
        """A new dict of the checked keys and values."""
        if not isinstance(value, dict):
            self.fail(value, where, "expected an object")
        if len(value) > self.max_items:
            self.fail(value, where, f"more than {self.max_items} keys")
        return {self.key.check(k, path_at(where, k)): self.value.check(v, path_at(where, k)) for k, v in value.items()}


class OneOf(Schema):
    """The first of `options` that accepts the value; otherwise the error of the option that got furthest."""

    def __init__(self, *options: Schema):
        self.options = options

    def check(self, value: Any, where: str = "") -> Any:
        """The value as the first accepting option returns it."""
        errors = []
        for option in self.options:
            try:
                return option.check(value, where)
            except Invalid as e:
                errors.append(e)
        raise max(errors, key=lambda e: e.depth)
