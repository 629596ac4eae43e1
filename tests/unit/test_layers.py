"""House rules that code review alone would miss.

Two checks of each rule: importing every module (what actually loads) and reading every
module's source with ``ast`` (an import inside a function, or one behind a branch a test never
takes, loads nothing until it runs).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WEB = ("flask", "werkzeug")


def imported_modules(source: str) -> list[tuple[int, list[str]]]:
    """(line, modules) of every import in ``source`` at any depth: ``import a.b``, ``from a.b
    import c`` (both ``a.b`` and ``a.b.c``, so a rule on ``a.b.c`` sees it), and ``importlib
    .import_module("a.b")`` / ``__import__("a.b")`` with a literal name. Relative imports (not
    used in this code base) keep their dots."""
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.append((node.lineno, [module, *(f"{module}.{a.name}" for a in node.names)]))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                found.append((node.lineno, [str(first.value)]))
    return found


def violations(root: Path, banned: tuple[str, ...], skip: tuple[str, ...] = ()) -> list[str]:
    """``path:line: module`` for every import statement under ``root`` of a module in
    ``banned`` or below it (``flask`` bans ``flask.json``, not ``flasky``); directories named in
    ``skip`` are not read."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if set(path.relative_to(root).parts) & set(skip):
            continue
        for line, modules in imported_modules(path.read_text(encoding="utf-8")):
            bad = [m for m in modules if any(m == b or m.startswith(b + ".") for b in banned)]
            if bad:
                found.append(f"{path.relative_to(root.parent)}:{line}: {bad[0]}")
    return found


def test_symfhir_never_imports_flask():
    code = (
        "import sys, pkgutil, importlib, symfhir\n"
        "for m in pkgutil.walk_packages(symfhir.__path__, 'symfhir.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'flask' or n.startswith('flask.'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_symfhir_source_imports_a_web_framework():
    assert violations(ROOT / "symfhir", WEB) == []


def test_the_app_never_imports_the_sandbox():
    # The app is built to the SMART spec, not to the sandbox EHR the tests launch it from.
    assert violations(ROOT / "smart_app", ("smart_app.sandbox",), skip=("sandbox",)) == []


#: The practitioner pages: each parses a request, calls one workflow and renders.
PAGES = ("summary.py", "intake.py", "consents.py", "photos.py")
#: What a page must leave to the workflows: talking FHIR, building or checking resources.
WORKFLOW_INTERNALS = (
    "symfhir.fhir",
    "symfhir.mapping",
    "symfhir.validation",
    "symfhir.photos",
    "requests",
)


def page_violations(app: Path) -> list[str]:
    found = []
    for name in PAGES:
        path = app / name
        for line, modules in imported_modules(path.read_text(encoding="utf-8")):
            bad = [
                m
                for m in modules
                if any(m == b or m.startswith(b + ".") for b in WORKFLOW_INTERNALS)
            ]
            if bad:
                found.append(f"{name}:{line}: {bad[0]}")
    return found


def test_pages_leave_fhir_to_the_workflows():
    # A page that imports the FHIR layer, a mapping or a validator is doing a workflow's job.
    assert page_violations(ROOT / "smart_app") == []


def test_the_page_check_finds_a_planted_fhir_import(tmp_path):
    for name in PAGES:
        (tmp_path / name).write_text("from symfhir.workspace.summary import read_summary\n")
    (tmp_path / "intake.py").write_text(
        "from symfhir.workspace.intake.saving import save_intake\n"
        "def submit():\n    from symfhir.fhir.paths import check_id\n    return check_id\n"
    )
    (tmp_path / "photos.py").write_text("from symfhir.mapping import bundle\n")
    assert page_violations(tmp_path) == [
        "intake.py:3: symfhir.fhir.paths",
        "photos.py:1: symfhir.mapping",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import flask\n",
        "from flask import Blueprint\n",
        "import werkzeug.datastructures as wd\n",
        "from werkzeug.datastructures import FileStorage\n",
        "def view():\n    from flask import request\n    return request\n",
        "class A:\n    def m(self):\n        if True:\n            import flask.json\n",
        "import importlib\nflask = importlib.import_module('flask')\n",
        "x = __import__('werkzeug')\n",
    ],
)
def test_the_check_finds_a_planted_web_import(tmp_path, source):
    package = tmp_path / "symfhir" / "workspace"
    package.mkdir(parents=True)
    (package / "clean.py").write_text('"""Fine."""\nimport json\nimport flasky\n')
    (package / "planted.py").write_text(source)
    found = violations(tmp_path / "symfhir", WEB)
    assert len(found) == 1
    assert found[0].startswith("symfhir/workspace/planted.py:")


def test_the_check_finds_a_planted_sandbox_import_and_skips_the_sandbox(tmp_path):
    app = tmp_path / "smart_app"
    (app / "sandbox").mkdir(parents=True)
    (app / "sandbox" / "proxy.py").write_text("from smart_app.sandbox.state import State\n")
    (app / "views.py").write_text("def f():\n    from smart_app.sandbox import scopes\n")
    (app / "other.py").write_text("from smart_app import sandbox\n")
    found = violations(app, ("smart_app.sandbox",), skip=("sandbox",))
    assert sorted(f.split(":")[0] for f in found) == ["smart_app/other.py", "smart_app/views.py"]
