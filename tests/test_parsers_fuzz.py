"""Property-based tests: no input crashes a parser of untrusted files with anything but its documented error."""
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import ConfigError, RunConfig
from core.data.base import DataError
from core.data.celeba import _read_attributes, _read_file_column
from core.data.folder import read_attribute_csv
from core.data.lfw import read_attribute_file
from core.runs.labels import LabelError, load_labels
from core.runs.folder import Run
from tests.tiny import tiny_config

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
# text that looks like the real files: digits, signs, separators, names, odd unicode digits, CRLF
file_text = st.tuples(
    st.sampled_from(["\t", " ", ",", "  "]),
    st.lists(st.lists(st.sampled_from(["1", "-1", "0", "2", "²", "x.jpg", "000001.jpg", "Smiling", "#", "person",
                                        "imagenum", "file", "1.5", "nan", "", "Jane Doe", "\u00a0", "true", "yes", '"']),
                      max_size=6), max_size=8),
).map(lambda t: "\r\n".join(t[0].join(cells) for cells in t[1]))


def _write(text: str | bytes) -> Path:
    path = Path(tempfile.mkdtemp()) / "file.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@FUZZ
@given(st.dictionaries(st.sampled_from(["name", "model", "arch", "loss", "data", "train", "modvae", "x"]), json_values))
def test_config_parser_only_raises_config_error(patch):
    data = tiny_config("fuzz").to_dict()
    data.update(patch)
    try:
        RunConfig.from_dict(json.loads(json.dumps(data)))
    except ConfigError:
        pass


@FUZZ
@given(st.one_of(json_values.map(json.dumps), st.binary(max_size=100)))
def test_labels_parser_only_raises_label_error(content):
    run = Run(Path(tempfile.mkdtemp()))
    (run.path / "labels.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    try:
        labels = load_labels(run)
    except LabelError:
        return
    assert all(isinstance(d, int) for d in labels)


@FUZZ
@given(file_text, st.binary(max_size=60))
def test_attribute_and_split_parsers_only_raise_data_error(text, raw):
    for content in (text, raw):
        path = _write(content)
        for parse in (_read_attributes, _read_file_column, read_attribute_file, read_attribute_csv):
            try:
                parse(path)
            except DataError:
                pass
