"""The dev server's access-log filter."""

from __future__ import annotations

import logging

import pytest

from smart_app.__main__ import _RedactQuery

pytestmark = pytest.mark.unit


def test_callback_query_is_redacted_in_access_log():
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        "x",
        1,
        '"GET /callback?code=%s&state=%s HTTP/1.1" 303',
        ("SECRETCODE", "S1"),
        None,
    )
    _RedactQuery().filter(record)
    assert "SECRETCODE" not in record.getMessage() and "S1" not in record.getMessage()
    assert "code=<redacted>" in record.getMessage()
