"""House rules that code review alone would miss."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


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
