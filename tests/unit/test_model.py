import pytest
from pydantic import ValidationError

from symfhir.model import SpaRecord
from tests.conftest import make_record_dict

pytestmark = pytest.mark.unit


def validate(data, context):
    return SpaRecord.model_validate(data, context=context)


def errors(data, context):
    with pytest.raises(ValidationError) as info:
        validate(data, context)
    return [
        (".".join(map(str, e["loc"])), e["msg"]) for e in info.value.errors(include_input=False)
    ]


def test_valid_record(record_context):
    record = validate(make_record_dict(), record_context)
    assert record.client.phones["mobile"] == "+13375550101"
    assert record.client.email == "avery.q@example.com"
    assert record.health.skin_concerns == ["melasma", "fine_lines"]
    assert record.consents["photos_website"].status == "withdrawn"
    assert record.consents["treatment"].kind == "treatment"


def test_codes_are_normalised(record_context):
    data = make_record_dict(health__skin_concerns=["Fine Lines", "MELASMA"])
    assert validate(data, record_context).health.skin_concerns == ["fine_lines", "melasma"]


@pytest.mark.parametrize(
    ("overrides", "where", "says"),
    [
        ({"client__birth_date": "2031-01-01"}, "client.birth_date", "future"),
        ({"client__birth_date": "1850-01-01"}, "client.birth_date", "1900"),
        ({"client__email": "nope@"}, "client.email", "email"),
        ({"client__phones": {"mobile": "555-12"}}, "client.phones.mobile", "phone"),
        ({"client__given_name": "  "}, "client.given_name", "empty"),
        ({"client__client_id": "bad id!"}, "client.client_id", "letters"),
        ({"client__sex": "robot"}, "client.sex", "unknown sex code"),
        ({"health__skin_concerns": ["glowing_aura"]}, "health.skin_concerns.0", "unknown"),
        ({"health__skin_type": "VII"}, "health.skin_type", "unknown skin_type"),
        ({"health__intake_date": "2026-02-30"}, "health.intake_date", "date"),
        ({"health__conditions": ["paid 4111 1111 1111 1111"]}, "health.conditions.0", "card"),
        ({"health__prior_treatments": [{"what": "peel", "when": "2024-13"}]}, "when", "real date"),
        ({"health__conditions": ["x" * 600]}, "health.conditions.0", "too long"),
        (
            {
                "consents__research": {
                    "status": "maybe",
                    "date": "2026-01-01",
                    "policy_version": "1",
                }
            },
            "consents.research.status",
            "given",
        ),
        (
            {"consents__bogus": {"status": "given", "date": "2026-01-01", "policy_version": "1"}},
            "consents.bogus.kind",
            "unknown consent kind",
        ),
        (
            {"treatments": [{"id": "T1", "date": "2026-03-02", "treatment": "reiki"}]},
            "treatments.0.treatment",
            "unknown treatment",
        ),
        ({"client__surname": "x"}, "client.surname", "Extra inputs"),
    ],
)
def test_rejects_with_field_and_reason(record_context, overrides, where, says):
    found = errors(make_record_dict(**overrides), record_context)
    assert any(where in loc and says.lower() in msg.lower() for loc, msg in found), found


def test_withdrawn_consent_needs_its_date(record_context):
    data = make_record_dict()
    del data["consents"]["photos_website"]["withdrawn_on"]
    found = errors(data, record_context)
    assert any("withdrawn_on" in msg for _, msg in found)


def test_minor_needs_guardian(record_context):
    found = errors(make_record_dict(client__birth_date="2012-05-05"), record_context)
    assert any("client.guardian" in msg and "under 18" in msg for _, msg in found)


def test_minor_needs_guardian_signed_treatment_consent(record_context):
    data = make_record_dict(client__birth_date="2012-05-05")
    data["client"]["guardian"] = {"name": "Parent Q", "relationship": "mother"}
    found = errors(data, record_context)
    assert any("consents.treatment" in msg and "guardian" in msg for _, msg in found)
    for consent in data["consents"].values():
        consent["signer"] = "guardian"
    record = validate(data, record_context)
    assert record.is_minor(record_context["today"])


def test_guardian_signer_needs_a_guardian(record_context):
    data = make_record_dict()
    data["consents"]["treatment"]["signer"] = "guardian"
    assert any("none is on file" in msg for _, msg in errors(data, record_context))


def test_card_numbers_can_be_masked(record_context):
    masked: list[int] = []
    context = {**record_context, "card_numbers": "mask", "masked": masked}
    data = make_record_dict(health__conditions=["card 4111 1111 1111 1111 on file"])
    record = validate(data, context)
    assert record.health.conditions == ["card [card number removed] on file"]
    assert masked == [1]


def test_unique_treatment_ids(record_context):
    data = make_record_dict()
    data["treatments"].append(dict(data["treatments"][0]))
    assert any("unique" in msg for _, msg in errors(data, record_context))


def test_age_counts_on_the_day_of_each_consent(record_context):
    # 18 on 2026-03-01: intake and consents of 2026-03-02 are an adult's own.
    data = make_record_dict(client__birth_date="2008-03-01")
    assert not validate(data, record_context).is_minor(record_context["today"])
    # A consent dated while still 17 needed the guardian's signature.
    data["consents"]["marketing_sms"]["date"] = "2026-02-27"
    found = errors(data, record_context)
    assert any("consents.marketing_sms.signer" in msg and "under 18" in msg for _, msg in found)


def test_minor_at_intake_needs_guardian_consent_even_if_adult_now(record_context):
    data = make_record_dict(client__birth_date="2008-06-01")  # 17 at the 2026-03-02 intake
    found = errors(data, record_context)
    assert any("client.guardian" in msg for _, msg in found)
    data["client"]["guardian"] = {"name": "Parent Q", "relationship": "mother"}
    for consent in data["consents"].values():
        consent["signer"] = "guardian"
    validate(data, record_context)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("(337) 555-0101", "+13375550101"),  # the spa's own region
        ("+1 604 253 1234", "+16042531234"),  # Canada shares +1: valid, not for the US
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_numbers_of_any_region_are_kept(record_context, given, stored):
    record = validate(make_record_dict(client__phones={"mobile": given}), record_context)
    assert record.client.phones["mobile"] == stored


def test_a_number_valid_in_no_region_is_refused(record_context):
    found = errors(make_record_dict(client__phones={"mobile": "+1 123 456 7890"}), record_context)
    assert found == [("client.phones.mobile", "Value error, not a valid phone number")]
