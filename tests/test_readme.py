"""The README's generated parts match the code they describe."""
import re
from pathlib import Path

from core.cli import family_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_model_table_is_the_registry():
    block = re.search(r"<!-- models:start -->\n(.*?)\n<!-- models:end -->", README.read_text(), re.S)
    assert block, "README.md lost its models:start / models:end markers"
    assert block.group(1).strip() == family_table(markdown=True), "run: python -m core models --markdown"
