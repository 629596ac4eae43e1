import pytest

from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import ConfigError, RecordError
from symfhir.sources.clients import ReadOptions, read_clients
from symfhir.sources.fieldmap import load_field_map, parse_field_map, row_to_record_dict
from symfhir.sources.rejects import Reject
from tests.conftest import DATA

pytestmark = pytest.mark.unit

KINDS = tuple(load_consent_kinds().kinds)


def test_default_map_reads_lists_parts_and_consents():
    fmap = load_field_map("default", KINDS)
    row = {
        "client_id": "C1",
        "allergies": "penicillin|hives|severe; latex",
        "skin_concerns": "melasma;  ; fine lines",
        "address_line1": "1 Example St",
        "address_line2": "Apt 2",
        "consent_treatment": "given",
        "consent_treatment_date": "2026-01-02",
        "consent_research_signer": "client",  # a stray cell of a never-asked consent
        "treatments": '[{"id": "T1"}]',
    }
    data, files = row_to_record_dict(row, fmap, "row 2")
    assert data["health"]["allergies"] == [
        {"substance": "penicillin", "reaction": "hives", "severity": "severe"},
        {"substance": "latex"},
    ]
    assert data["health"]["skin_concerns"] == ["melasma", "fine lines"]
    assert data["client"]["address"]["lines"] == ["1 Example St", "Apt 2"]
    assert data["consents"] == {"treatment": {"status": "given", "date": "2026-01-02"}}
    assert data["treatments"] == [{"id": "T1"}]
    assert files == {}


@pytest.mark.parametrize(
    ("row", "column", "says"),
    [
        ({"birth_date": "12/01/1990"}, "birth_date", "ISO 8601"),
        ({"treatments": "[{"}, "treatments", "JSON"),
        ({"allergies": "a|b|mild|food|extra"}, "allergies", "more than 4 parts"),
    ],
)
def test_cell_errors_name_the_column(row, column, says):
    fmap = load_field_map("default", KINDS)
    with pytest.raises(RecordError) as info:
        row_to_record_dict(row, fmap, "clients.csv row 9")
    assert (info.value.record, info.value.field) == ("clients.csv row 9", column)
    assert says in info.value.reason


def test_bad_maps_are_config_errors():
    with pytest.raises(ConfigError):
        parse_field_map({"fields": {"client.client_id": {"type": "date"}}}, [])
    with pytest.raises(ConfigError):
        parse_field_map({"fields": {"a": {"column": "x", "type": "weird"}}}, [])
    with pytest.raises(ConfigError):
        load_field_map("no-such-map", KINDS)


def test_glowbook_layout(ctx):
    fmap = load_field_map("glowbook", KINDS)
    options = ReadOptions(
        today=ctx.today, terminology=ctx.terminology, consent_kinds=ctx.consent_kinds
    )
    results = list(read_clients(DATA / "glowbook" / "clients.csv", fmap, options))
    assert len(results) == 4
    first, second, minor, bad = results
    assert not isinstance(first, Reject), first
    record = first.value
    assert record.client.birth_date.isoformat() == "1986-04-12"
    assert record.client.sex == "female"
    assert record.health.skin_type == "III"
    assert record.health.allergies[0].substance == "penicillin"
    assert record.health.allergies[0].severity == "moderate"
    assert [m.name for m in record.health.medications] == ["levothyroxine", "fish oil"]
    assert record.consents["photos_website"].status == "withdrawn"
    assert record.consents["photos_website"].withdrawn_on.isoformat() == "2026-06-15"
    assert record.consents["photos_social"].status == "declined"
    assert "research" not in record.consents
    assert second.value.client.sex == "other"
    assert second.value.health.prior_treatments[0].where == "Bayou Glow Med Spa"
    assert minor.value.client.guardian.relationship == "mother"
    assert minor.value.consents["treatment"].signer == "guardian"
    assert isinstance(bad, Reject)
    assert (bad.field, bad.record) == ("Birthday", "clients.csv row 5")
    assert "%m/%d/%Y" in bad.reason
