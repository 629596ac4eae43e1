"""The summary page marks a consent given under a privacy policy older than its latest
significant change as "re-consent needed" (policy §13)."""

from __future__ import annotations

from datetime import date

import pytest

from symfhir.policy_versions import PolicyHistory, PolicyVersion
from symfhir.workspace.consents import status

pytestmark = pytest.mark.unit


def test_re_consent_needed_after_a_significant_change(launched, monkeypatch):
    history = PolicyHistory(
        (
            PolicyVersion("2026-01", date(2026, 1, 1), False, ""),
            PolicyVersion("2026-11-15", date(2026, 11, 15), True, "new photo uses"),
        )
    )
    monkeypatch.setattr(status, "load_policy_history", lambda: history)
    page = launched.get("/").get_data(as_text=True)
    # The sample's treatment consent is given under 2026-01; its declined photo consent and
    # withdrawn marketing consent are not relied on, so they are not asked again.
    assert 'id="reconsent-treatment">re-consent needed</strong>' in page
    assert page.count("re-consent needed") == 1


def test_nothing_to_re_consent_without_a_significant_change(launched):
    assert "re-consent needed" not in launched.get("/").get_data(as_text=True)
