"""symfhir.policy_versions: the policy's version history, and which given consents need
the client's consent again after a significant change (policy §13), at the version boundaries."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from symfhir.consent_kinds import ConsentKinds, load_consent_kinds
from symfhir.errors import ConfigError
from symfhir.policy_versions import (
    PolicyHistory,
    PolicyVersion,
    load_policy_history,
    parse_policy_history,
)
from symfhir.workspace.consents.status import consent_overview

pytestmark = pytest.mark.unit

HISTORY = PolicyHistory(
    (
        PolicyVersion("2025-01-01", date(2025, 1, 1), False, "first"),
        PolicyVersion("2026-01-01", date(2026, 1, 1), True, "photos on social media"),
        PolicyVersion("2026-06-01", date(2026, 6, 1), False, "new office hours"),
    )
)


@pytest.mark.parametrize(
    ("version", "signed", "needed"),
    [
        ("2025-01-01", date(2025, 3, 1), True),  # before the significant change
        ("2026-01-01", date(2026, 1, 1), False),  # the significant version itself
        ("2026-06-01", date(2026, 7, 1), False),  # a later, minor change
        ("2025-01-01", date(2026, 3, 1), True),  # an old form signed late: the version decides
        # Versions the history does not list: the date against the change's effective day.
        ("", date(2025, 12, 31), True),
        ("", date(2026, 1, 1), False),
        ("2024-draft", None, True),
    ],
)
def test_reconsent_at_the_boundaries(version, signed, needed):
    assert HISTORY.reconsent_needed(version, signed) is needed


def test_no_significant_change_means_no_reconsent():
    minor = PolicyHistory((PolicyVersion("v1", date(2025, 1, 1), False, ""),))
    assert minor.latest_significant is None
    assert not minor.reconsent_needed("", None)
    assert HISTORY.latest_significant == HISTORY.versions[1]
    assert HISTORY.current == HISTORY.versions[2]


def test_the_bundled_history_ends_with_the_version_in_force():
    history = load_policy_history()
    assert history.current is not None and history.current.version == "2026-01-01"
    # Nothing significant yet: no consent on file asks for re-consent.
    assert history.latest_significant is None


def entry(version: str, effective: str, significant: bool = False) -> dict:
    return {"version": version, "effective": effective, "significant": significant}


def test_parse_reads_dates_and_strings():
    data = {
        "privacy_policy_history": [
            entry("v1", "2025-01-01"),
            {"version": "v2", "effective": date(2026, 1, 1), "significant": True},
        ]
    }
    history = parse_policy_history(data, "v2")
    assert [v.effective for v in history.versions] == [date(2025, 1, 1), date(2026, 1, 1)]
    assert history.latest_significant.version == "v2"


def test_without_a_history_the_version_in_force_is_no_change():
    history = parse_policy_history({}, "2026-01-01")
    assert [v.version for v in history.versions] == ["2026-01-01"]
    assert history.latest_significant is None


@pytest.mark.parametrize(
    ("raw", "in_force", "message"),
    [
        ([], "v1", "non-empty"),
        ([entry("v1", "2025-01-01"), entry("v1", "2026-01-01")], "v1", "twice"),
        ([entry("v1", "2026-01-01"), entry("v2", "2025-01-01")], "v2", "oldest first"),
        ([entry("v1", "2025-01-01"), entry("v2", "2026-01-01")], "v1", "must be"),
        ([entry("v1", "January")], "v1", "YYYY-MM-DD"),
        ([{"version": "v1"}], "v1", "needs version and effective"),
        ([{**entry("v1", "2025-01-01"), "significant": "yes"}], "v1", "true or false"),
        (["v1"], "v1", "mapping"),
    ],
)
def test_bad_histories_are_refused(raw, in_force, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy_history({"privacy_policy_history": raw}, in_force)


def test_a_bad_file_is_a_config_error(tmp_path: Path):
    path = tmp_path / "spa.yaml"
    path.write_text(
        "privacy_policy_version: v2\n"
        "privacy_policy_history: [{version: v1, effective: 2025-01-01}]\n"
    )
    with pytest.raises(ConfigError, match="must be privacy_policy_version"):
        load_policy_history(path)


def consent(kind: str, status: str, when: str, version: str) -> dict:
    return {
        "resourceType": "Consent",
        "status": status,
        "patient": {"reference": "Patient/p1"},
        "dateTime": when,
        "category": [
            {
                "coding": [
                    {"system": "http://symfhir.org/fhir/CodeSystem/consent-kind", "code": kind}
                ]
            }
        ],
        "policy": [{"uri": f"http://symfhir.org/fhir/policy/doc/{version}"}],
        "provision": {"type": "permit"},
    }


def test_the_overview_marks_given_consents_under_an_older_version():
    consents = [
        consent("treatment", "active", "2025-05-01T10:00:00Z", "2025-01-01"),
        consent("marketing_email", "inactive", "2025-05-01T10:00:00Z", "2025-01-01"),
        consent("photos_website", "active", "2025-05-01T10:00:00Z", "2025-01-01"),
        consent("photos_website", "active", "2026-02-01T10:00:00Z", "2026-01-01"),  # re-consented
        consent("research", "active", "2026-07-01T10:00:00Z", "2026-06-01"),
    ]
    overview = consent_overview(consents, load_consent_kinds(), policy=HISTORY)
    needed = {k.key for k in overview if k.reconsent_needed}
    assert needed == {"treatment"}  # withdrawn, re-consented and newer ones are not asked again


def test_a_kind_versioned_on_its_own_is_not_governed_by_the_privacy_policy():
    bundled = load_consent_kinds()
    kinds = {**bundled.kinds}
    kinds["treatment"] = type(kinds["treatment"])(
        **{**kinds["treatment"].__dict__, "version": "treatment-v3"}
    )
    own = ConsentKinds(bundled.policy_uri, kinds)
    consents = [consent("treatment", "active", "2025-05-01T10:00:00Z", "2025-01-01")]
    overview = consent_overview(consents, own, policy=HISTORY)
    assert not next(k for k in overview if k.key == "treatment").reconsent_needed
