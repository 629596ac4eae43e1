"""The app never imports the sandbox: it must work against a real EHR."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SMART_APP = Path(__file__).resolve().parents[2] / "smart_app"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_app_code_does_not_import_the_sandbox():
    offenders = []
    for path in SMART_APP.rglob("*.py"):
        if "sandbox" in path.relative_to(SMART_APP).parts:
            continue
        if any("sandbox" in name for name in imported_modules(path)):
            offenders.append(str(path.relative_to(SMART_APP)))
    assert offenders == []
