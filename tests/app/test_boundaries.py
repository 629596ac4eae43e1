"""The app never imports the sandbox EHR (it is built to the SMART spec, not to the sandbox)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

APP = Path(__file__).resolve().parents[2] / "smart_app"


def test_app_modules_do_not_import_the_sandbox():
    offenders = []
    for path in APP.rglob("*.py"):
        if "sandbox" in path.relative_to(APP).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if "sandbox" in n]
    assert offenders == []
