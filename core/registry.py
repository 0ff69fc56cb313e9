"""Things chosen by name (model families, regularisers, likelihoods): one table per kind, filled by the files that
define the entries, read by everything that offers a choice (config checks, the CLI, the Train page, the README).
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from core.settings import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name`; a second entry with the same name is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"{self.kind} {name!r}: use one of {', '.join(self._entries)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def sort(self, key) -> None:
        """Reorder the entries by `key(entry)` (files register in import order, which is alphabetical)."""
        self._entries = dict(sorted(self._entries.items(), key=lambda item: key(item[1])))

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)
