"""Text on the page: user and file text shown as text, never as Markdown or HTML (plain, md, say), bad input as a
message instead of a traceback (user_errors). No torch here: the Home page imports only this and
dashboard/startup.py, so the dashboard's first page does not wait for torch to load.
"""
from __future__ import annotations

import numbers
import re
import string
from contextlib import contextmanager
from typing import Any, Iterator

import streamlit as st

from core.config import ConfigError
from core.data import DataError
from core.fileio import UntrustedFileError
from core.runs.folder import RunError
from core.runs.labels import LabelError

USER_ERRORS = (ConfigError, DataError, RunError, LabelError, UntrustedFileError, OSError)


class Markdown(str):
    """Text that is already Markdown: ours, or user text that went through plain(). md() inserts it as it is."""


# Streamlit renders Markdown (CommonMark, GFM, $LaTeX$, its :colour[...] / :material/...: / :emoji: directives) in
# st.markdown, captions, alerts, titles, widget labels and help, metric values, radio options, image captions and
# progress texts. A file's or a user's text must never become an image there (a request to a URL of the file's
# choosing), a link with text of its choosing, or formatting, so it goes through plain(), which escapes each
# character that can start Markdown where it stands and leaves the rest as typed ("tiny-bvae", "labels.json",
# "Gray_Hair", "error: ..." stay readable). A bare URL (http://..., www...., a@b.c) is still made a link by GFM, which
# looks for them after the escapes are read: its text is the URL as typed, and nothing is requested unless clicked.
_ANYWHERE = re.compile(
    r"[\\`*\[\](){}<>#!|~$&]"  # emphasis, code, links, images, HTML and entities, tables, maths
    r"|:(?!\s)"  # :red[...], :material/x:, :smile: (a colon before a space starts nothing)
    r"|(?<![^\W_])_|_(?![^\W_])")  # an _ that can open or close emphasis (one between letters or digits cannot)
_LINE_START = re.compile(r"^([ \t]*)(?:([-+=])|(\d+)\.)", re.MULTILINE)  # lists, setext headings, rules


def plain(text: Any) -> Markdown:
    """`text` escaped so that Streamlit's Markdown shows it as typed: a run name, label or error message from a
    file can never become a link, an image (a request to a URL of the file's choosing) or formatting. Markdown
    (already escaped, or ours) comes back as it is."""
    if isinstance(text, Markdown):
        return text
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    text = _ANYWHERE.sub(lambda m: "\\" + m.group(), text)
    return Markdown(_LINE_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\."),
                                    text))


def code(text: Any) -> Markdown:
    """`text` as inline code (a path, a command with a run name in it): shown exactly as typed, nothing inside a
    code span is Markdown. The fence is one backtick longer than the longest run of backticks in `text`."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


class _Template(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        text = format(value, format_spec)
        if isinstance(value, (Markdown, numbers.Number)):  # ours already, or a number we format
            return text
        return plain(text)


def md(template: str, /, *args: Any, **values: Any) -> Markdown:
    """`template` (our Markdown: **bold**, `code`, ...) filled like str.format, with every inserted value shown as
    plain text: md("**{name}** failed: {error}", name=run.name, error=status["error"]). Numbers and Markdown
    values (plain(), code(), md() results) go in as they are."""
    return Markdown(_Template().vformat(template, args, values))


def say(kind: str, template: str, /, *args: Any, where: Any = st, **values: Any) -> None:
    """st.error / warning / info / success / caption / markdown ... (`kind`) of md(template, ...), in `where`."""
    getattr(where, kind)(md(template, *args, **values))


@contextmanager
def user_errors() -> Iterator[None]:
    """Show bad input and broken files as a message on the page instead of a traceback."""
    try:
        yield
    except USER_ERRORS as e:
        st.error(plain(e))
        st.stop()
