"""User text is text: a run name, hand label, note, status error, attribute name or eval.json string that holds
Markdown (an image that would fetch a URL, **bold**, :red[colour], $LaTeX$, HTML) is shown as typed on every page.

The page test plants hostile strings in every file the pages read, opens every page in pages/, and walks every
element Streamlit would draw (its protobuf, field by field): each text field that Streamlit renders as Markdown
must hold the hostile text escaped (dashboard.text.plain / md), and each Plotly figure must hold it with its
HTML escaped (dashboard.charts.chart_text). A new page is covered as soon as its file is in pages/.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.config import DataConfig
from core.explore import projection, umap_job
from core.metrics.evaluate import FILE as EVAL_FILE, FORMAT as EVAL_FORMAT
from core.runs.folder import Run
from dashboard.charts import chart_rows, chart_text
from dashboard.text import Markdown, code, md, plain
from tests.tiny import tiny_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p.stem for p in (ROOT / "pages").glob("*.py"))  # every page; Home through dashboard/Home.py

# What an attacker plants: an image on a loopback port nothing listens on, bold, colour, LaTeX and HTML.
HOSTILE = "![x](http://127.0.0.1:9/p.png) **bold** :red[red] $x$ <b>b</b>"
ATTRIBUTE = "![a](http://127.0.0.1:9/a.png) **bold** :red[attr] $x$ <b>b</b>"  # a column of the data set's CSV
# A run is a folder, and a folder name cannot hold '/': browsers read the '\' of an http URL as '/'.
RUN = r"![r](http:\\127.0.0.1:9\r.png) **b** :red[run] $x$ <b>b"
MARKER = "127.0.0.1"  # in every planted string: where it appears, the page shows user text
# Raw (unescaped) Markdown of the planted strings; plain() puts a backslash inside each of them.
RAW = ("![", "](http:", "**bold**", "**b**", ":red[", "$x$", "<b>", "</b>")
DOUBLE_ESCAPED = re.compile(r"\\\\\\[!\[*$<:]")  # plain(plain(text)): the user would see the backslashes
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)  # shown as typed (dashboard.text.code)
# Proto fields whose text Streamlit shows as plain text (or never shows): everything else is Markdown.
PLAIN_FIELDS = {
    ("Selectbox", "options"), ("Selectbox", "raw_value"), ("Selectbox", "default"), ("Selectbox", "placeholder"),
    ("MultiSelect", "options"), ("MultiSelect", "raw_values"), ("MultiSelect", "default"),
    ("MultiSelect", "placeholder"),
    ("TextInput", "value"), ("TextInput", "default"), ("TextInput", "placeholder"),
    ("TextArea", "value"), ("TextArea", "default"), ("TextArea", "placeholder"),
    ("Code", "code_text"), ("Text", "body"), ("Image", "url"), ("DownloadButton", "url"), ("PageLink", "page"),
    ("PlotlyChart", "spec"),  # JSON, checked as a figure below
}
NEVER_SHOWN = {"id", "form_id", "key", "page_script_hash", "element_id", "url_path", "selection_mode", "theme",
               "default_widget_value", "on_change_handler", "data", "format", "language"}


# --- the mechanism -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [HOSTILE, ATTRIBUTE, RUN, "a\n- list\n1. item\n===\n# h\n> quote",
                                  ":material/home: :smile: x_ _y_ __z__ ~~s~~ `c` | t | &lt; \\*"],
                         ids=["image", "attribute", "run-name", "blocks", "inline"])
def test_plain_escapes_every_markdown_construct(text):
    escaped = plain(text)
    assert not any(raw in escaped for raw in RAW), escaped
    unescaped = r"(?<!\\)(?:\n- |\n1\. |\n===|#|>|:material|:smile|_y|__|~~|`|\||&|\*)"
    assert not re.search(unescaped, escaped), escaped
    assert re.sub(r"\\(.)", r"\1", escaped) == text  # removing the escapes gives back exactly what was typed


def test_plain_leaves_ordinary_names_alone_and_md_escapes_only_the_values():
    for text in ("tiny-bvae", "labels.json", "Gray_Hair", "UMAP failed: ValueError: planted", "/nowhere/celeba",
                 "z3 ↔ Smiling, r = +0.71"):
        assert plain(text) == text
    assert plain(plain(HOSTILE)) == plain(HOSTILE)  # Markdown is never escaped twice
    text = md("**{name}** failed at step {step:,} ({r:+.2f}): {error}; run {command}", name=RUN, step=12345, r=-0.5,
              error=HOSTILE, command=code("python -m core train `x`"))
    assert isinstance(text, Markdown) and text.startswith("**\\!\\[r\\]") and "12,345 (-0.50)" in text
    assert plain(HOSTILE) in text and text.endswith("run `` python -m core train `x` ``")
    assert chart_text(HOSTILE).endswith("&lt;b&gt;b&lt;/b&gt;") and chart_rows([{"a": "<b>", "n": 1}]) == [
        {"a": "&lt;b&gt;", "n": 1}]


# --- every page, with hostile strings in every file it reads -----------------------------------------------------

def faces_folder(folder: Path, n: int = 80) -> Path:
    """A folder data set whose CSV names its attributes with Markdown: ATTRIBUTE (bright faces) and Smiling."""
    rng = np.random.default_rng(0)
    rows = [["file", ATTRIBUTE, "Smiling"]]
    for i in range(n):
        brightness = int(rng.integers(40, 220))
        image = np.full((64, 64, 3), brightness, np.uint8)
        image[16:48, 16:48] = rng.integers(0, 256, 3, dtype=np.uint8)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
        rows.append([f"{i:03d}.png", int(brightness > 130), i % 2])
    import csv

    with open(folder / "attributes.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder


def plant(run: Path) -> None:
    """Hostile hand labels, a failed status whose error is Markdown, and an eval.json full of it."""
    latent_dim = Run(run).config.arch.latent_dim
    label = {"label": HOSTILE, "meaningful": True, "note": HOSTILE}
    (run / "labels.json").write_text(json.dumps({"dims": {str(d): label for d in range(latent_dim)}}))
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "failed", "error": HOSTILE}))
    vector = {"method": HOSTILE, "flip_rate": [0.1, 0.5], "dependency": [0.0, 0.1], "pixel_change": [0.0, 0.2]}
    (run / EVAL_FILE).write_text(json.dumps({
        "format": EVAL_FORMAT, "run": run.name, "model": HOSTILE, "dataset": HOSTILE, "latent_dim": latent_dim,
        "step": Run(run).checkpoint_step(),
        "results": {
            "mig": {"skipped": HOSTILE},
            "probes": {"attributes": [{"name": ATTRIBUTE, "auc": 0.8, "best_dim_auc": 0.7, "best_dim": 1,
                                        "best_dim_sign": 1.0}],
                       "mean_auc": 0.8, "fast": True, "seconds": 1.0},
            "edits": {"alphas": [0.0, 1.0], "fast": True, "seconds": 1.0,
                      "judge": {"trained_on": HOSTILE, "aucs": {ATTRIBUTE: 0.9}},
                      "attributes": [{"name": ATTRIBUTE, "vectors": [vector, {**vector, "method": "mean"}],
                                      "judge_auc": 0.9, "false_positive_rate_originals": 0.1,
                                      "positive_rate_reconstructions_with": 0.8, "faces": 8}]}}}))


@pytest.fixture(scope="module")
def hostile_runs(tiny_runs_dir, tmp_path_factory):
    """The tiny runs, plus RUN: a run trained on a folder data set with a Markdown attribute name, renamed to a
    Markdown folder name, with planted labels, status and eval.json; plus a broken folder whose config.json
    error quotes Markdown. Returns (runs folder, data cache folder)."""
    base = tmp_path_factory.mktemp("user-text")
    root = shutil.copytree(tiny_runs_dir, base / "runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LATENTLAB_CACHE", str(base / "cache"))
        from core.training.loop import train

        data = faces_folder(base / "faces")
        config = tiny_config("folder-run", dataset="synthfaces", steps=20)
        config = replace(config, data=DataConfig("folder", str(data), str(data / "attributes.csv"))).validate()
        run = train(config, root, progress=False)
    run.path.rename(root / RUN)
    plant(root / RUN)
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text(json.dumps({"name": "broken", "model": HOSTILE}))
    return root, base / "cache"


@pytest.fixture
def runs(hostile_runs, tmp_path, monkeypatch):
    source, cache = hostile_runs
    root = shutil.copytree(source, tmp_path / "runs")
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(root))
    monkeypatch.setenv("LATENTLAB_CACHE", str(cache))
    return root


def open_page(name: str) -> AppTest:
    """`name` (a file in pages/) showing RUN; Home through the app's entry point, as the browser opens it."""
    at = AppTest.from_file(str(ROOT / ("dashboard/Home.py" if name == "home" else f"pages/{name}.py")),
                           default_timeout=120)
    at.query_params["run"] = RUN
    return at.run()


def nodes(node):
    """Every block and element of an AppTest tree, sidebar and main."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from nodes(child)


def texts(message, owner: str = ""):
    """(proto type, field, text) for every string in a protobuf message, nested messages and lists included."""
    kind = message.DESCRIPTOR.name
    for field, value in message.ListFields():
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            values = list(value.values())
        else:
            values = list(value) if repeated else [value]
        for v in values:
            if hasattr(v, "ListFields"):
                yield from texts(v, kind)
            elif isinstance(v, str):
                yield kind, field.name, v


def figure_texts(spec):
    if isinstance(spec, dict):
        for v in spec.values():
            yield from figure_texts(v)
    elif isinstance(spec, list):
        for v in spec:
            yield from figure_texts(v)
    elif isinstance(spec, str):
        yield spec


def check(at: AppTest) -> tuple[int, int]:
    """Assert that no user text reaches Markdown or a Plotly figure unescaped; returns how many Markdown texts and
    figure texts showed it (escaped), so a test can tell that the page did show user text."""
    assert not at.exception, [e.value for e in at.exception]
    shown = charted = 0
    for node in nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        for kind, field, text in texts(proto):
            if kind == "PlotlyChart" and field == "spec":
                for t in figure_texts(json.loads(text)):
                    assert "<b>b" not in t and "<a " not in t, f"Plotly text with raw HTML: {t!r}"
                    charted += "&lt;b&gt;" in t
                continue
            if field in NEVER_SHOWN or (kind, field) in PLAIN_FIELDS or MARKER not in text:
                continue
            text = CODE_SPAN.sub("`code`", text)
            assert not any(raw in text for raw in RAW), f"{kind}.{field} shows Markdown: {text!r}"
            assert not DOUBLE_ESCAPED.search(text), f"{kind}.{field} is escaped twice: {text!r}"
            shown += 1
    return shown, charted


# What each page does to show more user text than it shows on opening (widget key, value).
INTERACTIONS = {
    "embeddings": [("selectbox", "emb_colour", ("attribute", 0))],
    "arithmetic": [("selectbox", "arith_attribute", ATTRIBUTE)],
}
SHOWS = {"home", "train", "traversals", "embeddings", "arithmetic", "compare", "metrics"}  # pages that show some
CHARTS = {"train", "embeddings", "metrics"}  # pages whose figures show some


@pytest.mark.parametrize("name", PAGES)
def test_user_text_is_plain_text_on_every_page(runs, name):
    at = open_page(name)
    shown, charted = check(at)
    for widget, key, value in INTERACTIONS.get(name, []):
        getattr(at, widget)(key=key).set_value(value).run()
        more, more_charted = check(at)
        shown, charted = shown + more, charted + more_charted
    if name in SHOWS:
        assert shown, f"the {name} page showed no planted text: the test planted it where the page does not look"
    if name in CHARTS:
        assert charted, f"the {name} page's figures showed no planted text"


def test_a_umap_error_is_plain_text(runs, monkeypatch):
    """A UMAP worker that dies leaves its last output line as the error: the page shows it as typed."""
    worker = [sys.executable, "-c", f"print({HOSTILE!r})  # core.explore.umap_job"]
    monkeypatch.setattr(umap_job, "WORKER_COMMAND", worker)
    at = open_page("embeddings")
    at.radio(key="emb_method").set_value("UMAP").run()
    at.button(key="emb_start").click().run()
    run, deadline = Run(runs / RUN), time.time() + 60
    while (job := umap_job.umap_status(run, "test", None, projection.UmapParams())) is None or job.state != "failed":
        assert time.time() < deadline, "the planted UMAP failure never showed"
        time.sleep(0.2)
    at.run()
    assert check(at)[0] and any(plain(HOSTILE) in e.value for e in at.error)
