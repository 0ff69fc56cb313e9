"""Every module of core/ says what it is for, and so does every public class, function, method and property in it.

Public: a name without a leading underscore, at module level or in a public class (nested public classes count
too). Functions defined inside functions are implementation details and are not checked; neither are property
setters and deleters, which share the getter's docstring.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def core_modules() -> list[Path]:
    """Every .py file under core/, sorted."""
    return sorted((ROOT / "core").rglob("*.py"))


def _is_setter_or_deleter(node: ast.AST) -> bool:
    return any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in node.decorator_list)


def undocumented(source: str, path: str) -> list[str]:
    """'path:line name' (methods as Class.method) for each public definition in `source` without a docstring."""
    missing = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, DEFINITIONS) or node.name.startswith("_") or _is_setter_or_deleter(node):
                continue
            if not ast.get_docstring(node):
                missing.append(f"{path}:{node.lineno} {prefix}{node.name}")
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(source).body, "")
    return missing


def test_every_public_definition_in_core_has_a_docstring():
    missing = [line for p in core_modules() for line in undocumented(p.read_text(), str(p.relative_to(ROOT)))]
    assert not missing, f"{len(missing)} public definitions without a docstring:\n" + "\n".join(missing)


def test_every_core_module_has_a_docstring():
    missing = [str(p.relative_to(ROOT)) for p in core_modules() if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, "modules without a docstring:\n" + "\n".join(missing)


def test_the_check_finds_undocumented_public_definitions_only():
    source = '''
def documented():
    """Yes."""
    def inner():  # nested in a function: not checked
        pass

def bare():
    pass

def _private():
    pass

class Thing:
    """A thing."""

    def method(self):
        pass

    @property
    def size(self):
        return 1

    @size.setter
    def size(self, value):
        pass

    def _helper(self):
        pass

    def __len__(self):
        return 0

    class Part:
        def forward(self):
            pass

class _Hidden:
    def method(self):
        pass
'''
    assert undocumented(source, "m.py") == ["m.py:7 bare", "m.py:16 Thing.method", "m.py:20 Thing.size",
                                           "m.py:33 Thing.Part", "m.py:34 Thing.Part.forward"]
