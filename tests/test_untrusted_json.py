"""Every JSON file LatentLab reads is untrusted: one parser (core.fileio) with size, depth, number and schema limits,
and property-based fuzzing of the public readers the app uses, fed arbitrary bytes and adversarial JSON (deep
nesting, 5,000-digit integers, 1e400, NaN, wrong types): each gives a valid result or its documented error."""
from __future__ import annotations

import copy
import functools
import json
import math
import os
import socket
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import ConfigError
from core.data import cache
from core.explore.projection import UmapParams
from core.explore.traverse import kl_from_metrics
from core.explore.umap_job import embedding_path, umap_status
from core.fileio import UntrustedFileError, parse_json, read_json, read_json_lines
from core.schema import ANY, Int, ListOf, MapOf, Nullable, Num, Obj, OneOf, Str
from core.metrics import background, report, tables
from core.metrics.evaluate import FORMAT, load_eval
from core.runs import jobs, process
from core.runs.folder import STATES, Run, create_run
from core.runs.labels import LabelError, load_labels
from core.runs.summary import RunSummary, summaries, summarize
from tests.tiny import tiny_config

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --- what the real files look like --------------------------------------------------------------------------------

TRAIN = {"type": "train", "step": 10, "epoch": 0.5, "loss": 90.5, "recon": 80.0, "kl": 10.5,
         "kl_dims": [1.0, 2.0, 0.5, 0.0, 3.0, 1.0, 2.0, 1.0], "beta": 2.0, "lr": 0.002, "images_per_s": 700.0,
         "wall": 3.2}
VAL = {"type": "val", "step": 10, "epoch": 0.5, "recon": 81.0, "kl": 10.0, "neg_elbo": 91.0}
STATUS = {"state": "running", "pid": os.getpid(), "pid_started": process.process_start(os.getpid()),
          "host": socket.gethostname(), "step": 10, "total_steps": 20, "device": "cpu", "error": "", "updated": 1.0,
          "speedups": ["channels_last"], "command": ["python", "-m", "core"], "started": 1.0}
LABELS = {"dims": {"0": {"label": "hair", "meaningful": True, "note": "dark to blond"}, "3": {"label": "smile"}},
          "updated": 1.0}
_RESULT = {"seed": 0, "fast": True, "seconds": 1.5, "step": 10, "settings": {"num_train": 300}}
EVAL = {
    "format": FORMAT, "run": "fuzz", "model": "beta-vae", "dataset": "dsprites", "latent_dim": 8, "step": 10,
    "device": "cpu", "versions": {"torch": "2"}, "not_included": "a small CNN judges edits", "updated": 1.0,
    "results": {
        "beta_vae": {"eval_accuracy": 0.9, "train_accuracy": 0.95, **_RESULT},
        "factor_vae": {"eval_accuracy": 0.8, "train_accuracy": 0.85, "num_active_dims": 5, **_RESULT},
        "mig": {"mig": 0.1, "per_factor": [0.1, 0.2], **_RESULT},
        "dci": {"disentanglement": 0.3, "completeness": 0.4, "informativeness_train": 0.9,
                "informativeness_test": 0.8, "importance": [[0.1, 0.2], [0.3, 0.4]], **_RESULT},
        "sap": {"sap": None, **_RESULT},
        "likelihood": {"iwae": -100.0, "elbo": -110.0, "importance_samples": 20, "iwae_bits_per_dim": 0.1,
                       "iwae_by_k": {"1": -110.0, "20": -100.0}, **_RESULT},
        "reconstruction": {"mse_per_pixel": 0.01, "bce_per_pixel": 0.2, **_RESULT},
        "probes": {"mean_auc": 0.8, "attributes": [
            {"name": "Square", "auc": 0.8, "best_dim": 2, "best_dim_sign": 1, "best_dim_auc": 0.7,
             "positives_train": 10, "positives_test": 5},
            {"name": "Heart", "skipped": "only one class", "positives_train": 0, "positives_test": 0}], **_RESULT},
        "edits": {"alphas": [0, 1, 2], "threshold": 0.5, "missing": ["Sunglasses"], "attributes": [
            {"name": "Smiling", "faces": 8, "judge_auc": 0.9, "vectors": [
                {"method": "mean", "confounders": [], "condition_on": [], "flip_rate": [0.1, 0.5, 0.9],
                 "dependency": [0.0, 0.1, None], "pixel_change": [0.0, 0.01, 0.02]},
                {"method": "balanced", "confounders": ["Male"], "condition_on": [], "skipped": "too few faces"}]},
            {"name": "Eyeglasses", "faces": 0, "judge_auc": None, "skipped": "need faces with and without it"}],
                  "judge": {"trained_on": "train split", "aucs": {"Smiling": 0.9, "Eyeglasses": None}}, **_RESULT},
        "future_metric": {"score": 1.0, **_RESULT},
    }}
JOB = {"pid": 1, "pid_started": 12, "host": socket.gethostname(), "command": ["python"], "started": 1.0,
       "args": ["run", "test", "100"]}
PROGRESS = {"stage": "layout", "fraction": 0.5}
SIDECAR = {"version": 3, "root": "/data", "crop": {"left": 0}, "kept": ["a.jpg", "b.jpg"], "failed": [["c.jpg", "bad"]]}

# --- adversarial documents ----------------------------------------------------------------------------------------

# stand-ins that json.dumps can write, replaced by raw text no Python value dumps to
RAW = {"__HUGE__": "9" * 5000, "__NEGHUGE__": "-" + "1" * 400, "__BIG__": "1e400", "__NEGBIG__": "-1e999",
       "__DEEP__": "[" * 3000 + "]" * 3000, "__DEEPOBJ__": '{"a":' * 500 + "1" + "}" * 500,
       "__NAN__": "NaN", "__UNCLOSED__": "[" * 5000}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
nasty = st.one_of(
    st.sampled_from(list(RAW)),
    st.sampled_from(["abc", "", "\ud800", -1, 0, 2**63, -(2**40), 1e308, True, None, [], {}, ["a", "b"], [1, "x"],
                     {"x": [None]}, "running", 3.5]),
    st.floats(allow_nan=True, allow_infinity=True),
    json_values,
)


def _paths(node, path=()):
    """Every place in a document, as a tuple of keys (the root is ())."""
    yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _paths(child, (*path, key))


@st.composite
def mutated(draw, doc):
    """`doc` with one to three of its values, at any depth (most places are deep), replaced by nasty ones or
    deleted, as JSON text."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(sorted(_paths(doc), key=len, reverse=True)))
        if not path:
            doc = copy.deepcopy(draw(nasty))  # copies: a later mutation must not change the strategy's own values
            break
        parent = functools.reduce(lambda node, key: node[key], path[:-1], doc)
        if isinstance(parent, dict) and draw(st.integers(0, 4)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(nasty))
    text = json.dumps(doc)
    for marker, raw in RAW.items():
        text = text.replace(json.dumps(marker), raw)
    return text


def untrusted(doc):
    """File contents: arbitrary bytes, arbitrary JSON, adversarial raw text, or the real layout mutated."""
    return st.one_of(st.binary(max_size=200), json_values.map(json.dumps), st.sampled_from(list(RAW.values())),
                     mutated(doc), mutated(doc), mutated(doc))


@functools.lru_cache(maxsize=None)
def _run(name: str) -> Run:
    """A run folder with a valid config (no training), one per test, reused across examples."""
    run = create_run(tiny_config(name), Path(tempfile.mkdtemp()))
    (run.path / "checkpoint.safetensors").write_bytes(b"not read by the readers under test")
    return run


def _put(path: Path, content: str | bytes) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- the parser ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, why", [
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested deeper than 32 levels"),
    ("[" * 1_000_000, "nested deeper than 32 levels"),  # never closed
    ('{"step": ' + "9" * 5000 + "}", "step = 99999999999999999999...: an integer with 5000 digits"),
    ('{"loss": 1e400}', "loss = 1e400: too large for a finite number"),
    ('{"kl_dims": [1, NaN]}', "kl_dims[1] = NaN: not a finite number"),
    ('{"x": -Infinity}', "x = -Infinity: not a finite number"),
    (b"\xff\xfe{}", "not UTF-8 text"),
    ('{"step": 1', "not valid JSON"),
])
def test_the_parser_refuses_what_would_crash_json_loads_with_a_message(text, why):
    with pytest.raises(UntrustedFileError, match="^doc: " + why.replace("[", r"\[").replace("]", r"\]")):
        parse_json(text, source="doc")


def test_brackets_inside_strings_do_not_count_and_32_levels_parse():
    assert parse_json('["' + "[" * 5000 + '", "\\\\", "\\"{{{{"]') == ["[" * 5000, "\\", '"{{{{']
    assert parse_json("[" * 32 + "]" * 32) == [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]


def test_a_schema_names_the_field_and_the_rule():
    schema = Obj({"step": Int(0), "kl_dims": ListOf(Num()), "name": Str(5), "note": Nullable(Str()),
                  "dims": MapOf(ANY, key=Str(6, pattern=r"[0-9]+"))}, required=("step",))
    assert parse_json('{"step": 3, "kl_dims": [1, 2.5], "note": null, "extra": [1]}', schema)["extra"] == [1]
    for text, why in [('{"step": "abc"}', "step = 'abc': expected an integer"),
                      ('{"step": true}', "step = True: expected an integer"),
                      ('{"step": -1}', "step = -1: must be at least 0"),
                      ('{"step": 1, "kl_dims": ["a", "b"]}', r"kl_dims\[0\] = 'a': expected a number"),
                      ('{"step": 1, "name": "toolong"}', "name = 'toolong': longer than 5 characters"),
                      ('{"step": 1, "name": "\\ud800"}', "not valid Unicode text"),
                      ('{"step": 1, "dims": {"x": 1}}', r"dims.x = 'x': does not match \[0-9\]\+"),
                      ('{"kl_dims": []}', "missing key 'step'"),
                      ("[1]", "expected an object")]:
        with pytest.raises(UntrustedFileError, match=why):
            parse_json(text, schema)
    strict = Obj({"a": Int()}, extra=None)
    with pytest.raises(UntrustedFileError, match="b: unknown key"):
        parse_json('{"a": 1, "b": 2}', strict)
    cleaned = Obj({"step": Int(0), "loss": Num()}, required=("step",), drop_invalid=True)
    assert parse_json('{"step": 2, "loss": "abc", "x": 1}', cleaned) == {"step": 2, "x": 1}
    either = OneOf(Obj({"skipped": Str()}, required=("skipped",), extra=None), Obj({"auc": Num(0, 1)}, required=("auc",)))
    with pytest.raises(UntrustedFileError, match="auc = 7: must be between 0 and 1"):
        parse_json('{"auc": 7}', either)


def test_read_json_limits_size_and_refuses_links_fifos_and_missing_files(tmp_path):
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 1000 + "1]")
    with pytest.raises(UntrustedFileError, match=r"big.json: 2,003 bytes, more than the 1,000 .*; delete it"):
        read_json(big, max_bytes=1000, fix="delete it")
    (tmp_path / "link.json").symlink_to(big)
    with pytest.raises(UntrustedFileError, match="link.json: is a symbolic link"):
        read_json(tmp_path / "link.json")
    os.mkfifo(tmp_path / "fifo.json")  # would block an open() forever
    with pytest.raises(UntrustedFileError, match="fifo.json: not a regular file"):
        read_json(tmp_path / "fifo.json")
    assert read_json(tmp_path / "absent.json", missing=None) is None
    with pytest.raises(UntrustedFileError, match="absent.json: does not exist"):
        read_json(tmp_path / "absent.json")


def test_json_lines_skip_bad_lines_clean_bad_fields_and_read_tails(tmp_path):
    path = tmp_path / "metrics.jsonl"
    schema = Obj({"type": Str(), "step": Int(0), "loss": Num()}, required=("type", "step"), drop_invalid=True)
    lines = [json.dumps({"type": "train", "step": 1, "loss": 2.0}), "x" * 3_000_000, "[" * 100_000,
             '{"type": "train", "step": "abc"}', '{"type": "train", "step": 2, "loss": "abc"}',
             '{"type": "train", "step": ' + "9" * 5000 + "}", '{"type": "train", "step": 3, "loss": 1e400}',
             '{"type": "train", "step": 4, "loss": NaN}', json.dumps({"type": "val", "step": 5}), '{"type": "tr']
    path.write_text("\n".join(lines))
    assert read_json_lines(path, schema) == [{"type": "train", "step": 1, "loss": 2.0}, {"type": "train", "step": 2},
                                             {"type": "val", "step": 5}]
    assert read_json_lines(path, schema, tail_bytes=60) == [{"type": "val", "step": 5}]
    assert read_json_lines(tmp_path / "absent.jsonl", schema) == []


def test_every_reader_goes_through_the_parser(tmp_path):
    run = create_run(tiny_config("readers"), tmp_path)
    config = json.loads((run.path / "config.json").read_text())
    for bad, why in [(json.dumps(config).replace('"steps": 20', '"steps": ' + "9" * 5000), "train.steps = .*5000 digits"),
                     ("[" * 100_000 + "]" * 100_000, "nested deeper"),
                     (json.dumps(config).replace('"lr": 0.002', '"lr": 1e400'), "train.lr = inf: must be a finite")]:
        (run.path / "config.json").write_text(bad)
        with pytest.raises(ConfigError, match="config.json: " + why):
            run.config
    (run.path / "config.json").write_text(json.dumps(config))
    (run.path / "status.json").write_text('{"state": "finished", "step": "abc", "total_steps": 1e400}')
    assert run.status() == {"state": "unknown"}  # 1e400 is no number: the file is refused whole
    (run.path / "status.json").write_text('{"state": "finished", "step": "abc", "error": 7, "total_steps": 20}')
    assert run.status() == {"state": "finished", "total_steps": 20}  # mistyped fields dropped
    (run.path / "metrics.jsonl").write_text(json.dumps({**TRAIN, "loss": "abc", "kl_dims": ["a"]}) + "\n")
    record = run.metrics("train")[0]
    assert "loss" not in record and "kl_dims" not in record and record["recon"] == 80.0
    (run.path / "labels.json").write_text('{"dims": {"1": {"label": ' + "9" * 5000 + "}}}")
    with pytest.raises(LabelError, match=r"labels.json: dims.1.label = 9999.*5000 digits .*; fix or delete it"):
        load_labels(run)


def test_a_valid_eval_json_loads_unchanged_and_a_bad_result_is_left_out(tmp_path):
    run = Run(tmp_path)
    (tmp_path / "eval.json").write_text(json.dumps(EVAL))
    assert load_eval(run) == EVAL
    broken = copy.deepcopy(EVAL)
    broken["results"]["edits"]["attributes"][0]["vectors"][0]["flip_rate"] = [0.1]  # one value for three alphas
    broken["results"]["mig"]["mig"] = "abc"
    (tmp_path / "eval.json").write_text(json.dumps(broken))
    assert set(EVAL["results"]) - set(load_eval(run)["results"]) == {"edits", "mig"}
    (tmp_path / "eval.json").write_text('{"format": "' + FORMAT + '", "step": ' + "9" * 5000 + "}")
    assert load_eval(run) is None


# --- fuzzing the public readers -----------------------------------------------------------------------------------

@FUZZ
@given(untrusted(STATUS), untrusted(TRAIN))
def test_status_and_progress_readers_never_crash(status, metrics_line):
    run = _run("fuzz-status")
    _put(run.path / "status.json", status)
    _put(run.path / "metrics.jsonl", metrics_line)
    got = run.status()
    assert isinstance(got, dict) and got["state"] in (*STATES, "unknown")
    where = jobs.progress(run)
    assert isinstance(where.step, int) and isinstance(where.total, int) and where.total > 0
    assert where.images_per_s is None or _finite_number(where.images_per_s)
    row = summarize(run)
    assert isinstance(row, RunSummary) and row.model is not None  # status and metrics never break a good config


@FUZZ
@given(st.lists(st.one_of(mutated(TRAIN), mutated(VAL), st.just(json.dumps(TRAIN)), st.binary(max_size=80),
                          st.sampled_from(list(RAW.values()))), max_size=6))
def test_metrics_readers_never_crash_and_clean_every_record(lines):
    run = _run("fuzz-metrics")
    _put(run.path / "metrics.jsonl", b"\n".join(x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass")
                                               for x in lines))
    for record in run.metrics():
        assert isinstance(record["type"], str) and isinstance(record["step"], int) and record["step"] >= 0
        for key in ("epoch", "loss", "recon", "kl", "beta", "lr", "images_per_s", "wall", "neg_elbo"):
            assert key not in record or _finite_number(record[key]), (key, record)
        assert all(_finite_number(x) for x in record.get("kl_dims", []))
    summarize(run)
    jobs.progress(run)
    kl = kl_from_metrics(run)
    assert kl is None or np.isfinite(kl).all()


@FUZZ
@given(untrusted(LABELS))
def test_labels_reader_gives_labels_or_label_error(content):
    run = _run("fuzz-labels")
    _put(run.path / "labels.json", content)
    try:
        labels = load_labels(run)
    except LabelError as e:
        assert "labels.json" in str(e)
        return
    assert all(isinstance(d, int) and d >= 0 and isinstance(v.label, str) and isinstance(v.meaningful, bool)
               for d, v in labels.items())
    "".join(v.label + v.note for v in labels.values()).encode("utf-8")  # printable: no lone surrogates


@FUZZ
@given(untrusted(EVAL))
def test_eval_reader_and_everything_that_shows_it_never_crash(content):
    run = _run("fuzz-eval")
    _put(run.path / "eval.json", content)
    doc = load_eval(run)
    if doc is None:
        return
    report.summary(doc)
    tables.score_rows(doc), tables.probe_rows(doc), tables.edit_rows(doc), tables.judge_rows(doc)
    tables.skipped_ground_truth(doc)
    assert tables.comparison_rows([run])[0]["run"] == run.name
    f"{doc['step']:,}"  # as the Metrics page shows it


@FUZZ
@given(untrusted(json.loads(tiny_config("x").to_json())))
def test_config_reader_gives_config_error_and_listings_go_on(content):
    run = _run("fuzz-config")
    _put(run.path / "config.json", content)
    try:
        run.config
    except ConfigError as e:
        assert "config.json" in str(e)
    row = summarize(run)
    assert row.model is not None or "config.json" in row.problem
    assert [r.name for r in summaries(run.path.parent)] == [run.name]


@FUZZ
@given(untrusted(JOB), untrusted(PROGRESS), untrusted({**JOB, "pid": os.getpid()}))
def test_process_records_and_umap_job_files_never_crash(job, progress, evaluation):
    run = _run("fuzz-jobs")
    path = embedding_path(run, "test", 100, UmapParams())
    path.parent.mkdir(exist_ok=True)
    _put(path.with_suffix(".job"), job)
    _put(path.with_suffix(".progress"), progress)
    state = umap_status(run, "test", 100, UmapParams())
    assert state is None or state.state in ("running", "failed")
    if state is not None and state.state == "running":
        assert isinstance(state.stage, str) and (state.fraction is None or 0 <= state.fraction <= 1)
    _put(run.path / background.STATUS, evaluation)
    assert background.evaluation_running(run) in (True, False)
    background.evaluation_progress(run)


@FUZZ
@given(untrusted(SIDECAR))
def test_data_cache_sidecar_is_used_or_the_cache_rebuilt(content):
    folder = Path(_run("fuzz-cache").path)
    path = folder / "cache.npy"
    if not path.exists():
        np.save(path, np.zeros((2, 3, 64, 64), np.uint8))
    _put(path.with_suffix(".json"), content)
    found = cache._load_existing(path)
    assert found is None or (len(found.files) == 2 and all(len(f) == 2 for f in found.failed))
