"""The import rules of core/ (see core/__init__.py), read from the source of every module, so a forbidden import
fails here before anyone trips over it. Imports under `if TYPE_CHECKING:` are annotations, not dependencies."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = {"core.settings", "core.registry", "core.schema", "core.fileio", "core.config", "core.device"}
# What each layer may import besides itself and the standard/third-party libraries.
ALLOWED = {
    "core.settings": set(),
    "core.registry": {"core.settings"},
    "core.schema": set(),
    "core.fileio": {"core.schema"},
    "core.models": {"core.settings", "core.registry"},
    "core.objectives": {"core.settings", "core.registry", "core.models"},
    "core.config": {"core.settings", "core.registry", "core.schema", "core.fileio", "core.models", "core.objectives"},
    "core.device": {"core.settings", "core.config"},
    "core.recipes": {"core.settings", "core.registry"},
    "core.data": BASE | {"core.models", "core.objectives"},
    "core.runs": BASE | {"core.models", "core.objectives", "core.data"},
    "core.explore": BASE | {"core.models", "core.objectives", "core.data", "core.runs"},
    "core.metrics": BASE | {"core.models", "core.objectives", "core.data", "core.runs", "core.explore"},
    "core.training": BASE | {"core.models", "core.objectives", "core.data", "core.runs"},
    "core.cli": BASE | {"core.models", "core.objectives", "core.data", "core.runs", "core.explore", "core.metrics",
                        "core.training", "core.recipes"},
    "core.__main__": {"core.cli"},
    "core": set(),
}


def layer(module: str) -> str:
    """The layer a dotted module belongs to: its package under core/, or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports(source: str, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import in `source`, including those inside functions, except under
    `if TYPE_CHECKING:`."""
    tree = ast.parse(source)
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[:-node.level] if not module.endswith("__init__") else module.split(".")
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            # `from core import jobs` imports the module core.jobs
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "core"]
    return found


def violations(source: str, module: str, pages: bool = False) -> list[str]:
    """Forbidden imports in one module's source, as readable lines."""
    bad = []
    for line, target in imports(source, module):
        top = target.split(".")[0]
        if pages:
            if top in ("core", "dashboard") or not _first_party(top):
                continue
            bad.append(f"{module}:{line} imports {target} (pages import only core and dashboard)")
            continue
        if top == "streamlit" and module.startswith("core"):
            bad.append(f"{module}:{line} imports streamlit (core never does)")
        if top != "core" or target == "core":
            continue
        mine, theirs = layer(module), layer(target)
        if mine != theirs and theirs not in ALLOWED[mine]:
            bad.append(f"{module}:{line} imports {target} ({mine} may import {sorted(ALLOWED[mine]) or 'nothing'})")
    return bad


def _first_party(top: str) -> bool:
    return (ROOT / top).is_dir() or (ROOT / f"{top}.py").is_file()


def core_modules() -> list[Path]:
    return sorted((ROOT / "core").rglob("*.py"))


def test_every_core_module_belongs_to_a_known_layer():
    unknown = {layer(module_name(p)) for p in core_modules()} - set(ALLOWED)
    assert not unknown, f"add these to ALLOWED (and to core/__init__.py's map): {sorted(unknown)}"


def test_core_modules_import_only_lower_layers():
    bad = [v for p in core_modules() for v in violations(p.read_text(), module_name(p))]
    assert not bad, "\n".join(bad)


def test_pages_and_dashboard_import_only_core_and_dashboard():
    files = sorted((ROOT / "pages").glob("*.py")) + sorted((ROOT / "dashboard").glob("*.py"))
    bad = [v for p in files for v in violations(p.read_text(), module_name(p), pages=True)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module, planted, rule", [
    ("core.metrics.mig", "from core.training.loop import Trainer", "core.metrics may import"),
    ("core.explore.traverse", "import core.training.feed", "core.explore may import"),
    ("core.runs.jobs", "from core.cli import main", "core.runs may import"),
    ("core.data.base", "from core.runs.folder import Run", "core.data may import"),
    ("core.models.vae", "def f():\n    from core.training import loop", "core.models may import"),
    ("core.explore.generate", "import streamlit as st", "core never does"),
])
def test_a_planted_forbidden_import_is_caught(module, planted, rule):
    path = ROOT / (module.replace(".", "/") + ".py")
    source = path.read_text() + "\n" + planted + "\n"
    assert any(rule in v for v in violations(source, module))
    assert not violations(path.read_text(), module)


def test_type_checking_imports_are_not_dependencies():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from core.training.loop import Trainer\n"
    assert not violations(source, "core.metrics.mig")


def test_a_page_importing_another_first_party_package_is_caught():
    assert violations("import tests.tiny\n", "pages.train", pages=True)
    assert not violations("import numpy\nfrom core.config import RunConfig\nfrom dashboard import common\n",
                          "pages.train", pages=True)
