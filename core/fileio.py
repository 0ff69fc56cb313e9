"""Files: atomic writes (a reader, or a crash, never sees a half-written file), and the one way every JSON file is read.

Every file LatentLab reads may come from someone else (a run folder copied from another machine, a hand edit, an
attack), so every JSON and JSON-lines file goes through `read_json` / `read_json_lines` / `parse_json`:

- a size limit (read no more than that), regular files only, never through a symbolic link, UTF-8 text;
- a nesting-depth limit, checked by scanning the brackets before `json.loads` recurses;
- no integers longer than MAX_INT_DIGITS digits, no NaN, Infinity or numbers that overflow to infinity;
- a small schema per kind of file (types, ranges, finite numbers; unknown keys allowed where a file may grow),
  built from the classes below (Obj, MapOf, ListOf, Str, Num, Int, Bool, Nullable, OneOf, ANY).

Anything wrong is an UntrustedFileError: `<file>: <what is wrong>; <what to do>`, e.g.
`runs/x/labels.json: dims.3.label = 7: expected a string; fix or delete it`.

Writes into a run folder pass `inside=<run folder>`, and a write whose folder resolves outside it (a subfolder
replaced by a symbolic link) is refused with the same error.
"""
from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from core.schema import ANY, Invalid, Schema, path_at

MAX_DEPTH = 32  # nesting levels of arrays and objects; LatentLab's own files use at most 6
MAX_INT_DIGITS = 20  # enough for any 64-bit integer
MAX_JSON_BYTES = 4 << 20  # default size limit of one JSON file
MAX_LINE_BYTES = 1 << 20  # size limit of one line of a JSON-lines file; longer lines are skipped
_REQUIRED = object()


class UntrustedFileError(ValueError):
    """A file LatentLab reads is unreadable, too large, too deeply nested, not JSON, or not shaped as its kind of
    file must be; or a write would leave its run folder. The message names the file, what is wrong and what to do."""


# --- atomic writes ---------------------------------------------------------------------------------------------

def check_inside(path: str | Path, root: str | Path) -> Path:
    """`path` if its folder, with every symbolic link resolved, is `root` or inside it; else UntrustedFileError
    (a subfolder of a run folder replaced by a link must not carry a write elsewhere)."""
    path, root = Path(path), Path(root)
    parent, base = path.parent.resolve(), root.resolve()
    if path.is_symlink() or not (parent == base or parent.is_relative_to(base)):
        raise UntrustedFileError(f"{path}: leads outside {root} (a symbolic link?); LatentLab does not write through "
                                 f"links: remove the link and try again")
    return path


@contextmanager
def atomic_path(path: str | Path, inside: str | Path | None = None) -> Iterator[Path]:
    """Yield a temp path in the target's folder; on success fsync it and rename it over `path`. With `inside`,
    the target's folder must resolve to that folder or below it (check_inside)."""
    path = Path(path)
    if inside is not None:
        check_inside(path, inside)  # before mkdir: nothing is created through a link either
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp (and some writers, like safetensors) make files private; run folders are shared
        os.chmod(tmp, 0o644)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes, inside: str | Path | None = None) -> None:
    """Replace the file at `path` with `data` atomically (see atomic_path), creating its folder if needed."""
    with atomic_path(path, inside) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj: Any, inside: str | Path | None = None) -> None:
    """Write `obj` to `path` atomically as indented JSON with a trailing newline."""
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode(), inside)


def open_append(path: str | Path):
    """`path` opened for appending text (created if absent), never through a symbolic link (OSError ELOOP)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, "a")


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the lock file `path` (created if absent, never through a link), across processes."""
    with open_append(path) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- parsing ---------------------------------------------------------------------------------------------------

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string: brackets inside it do not count
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_AS_PARENS = str.maketrans("[]{}", "()()")


def _check_depth(text: str, max_depth: int) -> None:
    """Invalid if arrays and objects nest deeper than `max_depth`, found without recursion before json.loads
    recurses: strings removed, brackets kept, then each pass deletes the innermost level of "()" pairs (string
    operations only, so a megabyte of brackets takes milliseconds)."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_AS_PARENS)
    for level in range(1, max_depth + 1):
        brackets = brackets.replace("()", "")
        if "()" not in brackets:
            # what is left is ")))(((": openers never closed also nest whatever came after them
            if level + brackets.count("(") <= max_depth:
                return
            break
    raise Invalid("", f"nested deeper than {max_depth} levels")


class _Refused:
    """A number the parser refused (too many digits, not finite): kept in place, so the message can say where."""

    __slots__ = ("text", "why")

    def __init__(self, text: str, why: str):
        self.text, self.why = text, why


def _where_refused(value: Any, where: str = "") -> tuple[str, _Refused] | None:
    """(path, refused number) of the first _Refused in a parsed document (depth is bounded, so recursion is safe)."""
    if isinstance(value, _Refused):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if (found := _where_refused(item, path_at(where, key))) is not None:
            return found
    return None


def _loads(data: str | bytes, schema: Schema, max_depth: int, finite: bool = True) -> Any:
    """Parse and check; Invalid on anything wrong. With `finite` False, NaN, Infinity and numbers that overflow
    to infinity parse as floats (for a reader that checks finiteness itself, naming the setting)."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise Invalid("", f"not UTF-8 text (byte {e.start})") from None
    _check_depth(data, max_depth)
    refused = []

    def parse_int(text: str) -> Any:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            refused.append(_Refused(text[:20] + "...", f"an integer with {len(text.lstrip('-'))} digits (at most "
                                                       f"{MAX_INT_DIGITS})"))
            return refused[-1]
        return int(text)

    def parse_float(text: str) -> Any:
        value = float(text)
        if finite and not math.isfinite(value):
            refused.append(_Refused(text[:30], "too large for a finite number"))
            return refused[-1]
        return value

    def parse_constant(text: str) -> Any:
        if not finite:
            return float(text)
        refused.append(_Refused(text, "not a finite number"))
        return refused[-1]

    try:
        value = json.loads(data, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except json.JSONDecodeError as e:
        raise Invalid("", f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:  # not reached after the depth check; kept so no input can escape as another error
        raise Invalid("", "nested too deeply") from None
    if refused:
        where, number = _where_refused(value) or ("", refused[0])
        raise Invalid(where, number.why, number.text)
    return schema.check(value, "")


def parse_json(data: str | bytes, schema: Schema = ANY, source: str = "JSON", max_depth: int = MAX_DEPTH) -> Any:
    """`data` (text, or UTF-8 bytes) parsed and checked against `schema`; UntrustedFileError naming `source`."""
    try:
        return _loads(data, schema, max_depth)
    except Invalid as e:
        raise UntrustedFileError(f"{source}: {e}") from None


def _open_regular(path: Path, fix: str) -> int | None:
    """A read-only descriptor of regular file `path`, opened without following a final symbolic link and without
    blocking on a FIFO; None when the file does not exist; UntrustedFileError when it is anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():  # the last component is a link
            raise UntrustedFileError(f"{path}: is a symbolic link, and LatentLab reads no links in its folders; "
                                     "replace it with the file itself") from None
        raise UntrustedFileError(f"{path}: cannot be read ({e.strerror or e}); {fix}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UntrustedFileError(f"{path}: not a regular file; {fix}")
    return fd


def _read_limited(path: Path, max_bytes: int, fix: str) -> bytes | None:
    """The bytes of regular file `path` (not through a link, at most max_bytes); None when it does not exist."""
    fd = _open_regular(path, fix)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise UntrustedFileError(f"{path}: {size:,} bytes, more than the {max_bytes:,} such a file may have; {fix}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UntrustedFileError(f"{path}: more than the {max_bytes:,} bytes such a file may have; {fix}")
    return data


def read_json(path: str | Path, schema: Schema = ANY, *, max_bytes: int = MAX_JSON_BYTES,
              fix: str = "fix or delete it", missing: Any = _REQUIRED, max_depth: int = MAX_DEPTH,
              finite: bool = True) -> Any:
    """The JSON document in file `path`, checked against `schema` (see the module docstring). A missing file returns
    `missing` when given; everything else wrong is an UntrustedFileError `<path>: <what is wrong>; <fix>`. With
    `finite` False, NaN and infinities are let through as floats, for a caller that checks them itself."""
    path = Path(path)
    data = _read_limited(path, max_bytes, fix)
    if data is None:
        if missing is not _REQUIRED:
            return missing
        raise UntrustedFileError(f"{path}: does not exist; {fix}")
    try:
        return _loads(data, schema, max_depth, finite)
    except Invalid as e:
        raise UntrustedFileError(f"{path}: {e}; {fix}") from None


def _lines(f, max_line_bytes: int) -> Iterator[bytes | None]:
    """The lines of a binary file, None in place of a line longer than max_line_bytes (never held whole)."""
    while True:
        line = f.readline(max_line_bytes + 1)
        if not line:
            return
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of the long line
                line = f.readline(1 << 16)
            yield None
            continue
        yield line


def read_json_lines(path: str | Path, schema: Schema = ANY, *, tail_bytes: int | None = None,
                    max_line_bytes: int = MAX_LINE_BYTES, fix: str = "fix or delete it") -> list[Any]:
    """The records of JSON-lines file `path` that parse and fit `schema` (as `schema` cleans them); a line that
    does not (a torn last line, garbage, wrong types, too long, too deep) is skipped. With `tail_bytes`, only the
    whole lines in the last tail_bytes of the file. A missing file has no records; an unreadable one (a link, not a
    regular file, no permission) is an UntrustedFileError."""
    path = Path(path)
    fd = _open_regular(path, fix)
    if fd is None:
        return []
    records = []
    with os.fdopen(fd, "rb") as f:
        lines = _lines(f, max_line_bytes)
        if tail_bytes is not None:
            start = max(0, f.seek(0, os.SEEK_END) - tail_bytes)
            f.seek(start)
            if start:
                next(lines, None)  # the partial line the tail starts in
        for line in lines:
            if line is None or not line.strip():
                continue
            try:
                records.append(_loads(line, schema, MAX_DEPTH))
            except Invalid:
                continue
    return records


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by null: JSON has no NaN or inf (and our readers refuse them)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
