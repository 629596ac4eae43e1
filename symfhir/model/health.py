"""Health history, intake answers, treatment records and consultation notes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from symfhir.model.fields import (
    Identifier,
    LongText,
    PartialDate,
    PastDate,
    ShortText,
    code_key,
    today_of,
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _past_datetime(value: datetime, info: ValidationInfo) -> datetime:
    if value.date() > today_of(info):
        raise ValueError("is in the future")
    return value


PastDateTime = Annotated[datetime, AfterValidator(_past_datetime)]


class Allergy(_Model):
    substance: ShortText
    reaction: ShortText | None = None
    severity: code_key("allergy_severity") | None = None  # type: ignore[valid-type]
    category: code_key("allergy_category") | None = None  # type: ignore[valid-type]


class Medication(_Model):
    name: ShortText
    kind: code_key("medication_kind") = "medication"  # type: ignore[valid-type]
    dose: ShortText | None = None


class PriorTreatment(_Model):
    """A cosmetic or aesthetic treatment done before, possibly elsewhere."""

    what: ShortText
    when: PartialDate | None = None
    where: ShortText | None = None


class HealthHistory(_Model):
    intake_date: PastDate
    conditions: list[ShortText] = []
    medications: list[Medication] = []
    allergies: list[Allergy] = []
    prior_treatments: list[PriorTreatment] = []
    skin_type: code_key("skin_type", keep_case=True) | None = None  # type: ignore[valid-type]
    skin_concerns: list[code_key("skin_concern")] = []  # type: ignore[valid-type]
    contraindications: list[code_key("contraindication")] = []  # type: ignore[valid-type]
    pregnancy: code_key("pregnancy_status") | None = None  # type: ignore[valid-type]
    breastfeeding: code_key("breastfeeding") | None = None  # type: ignore[valid-type]
    smoking: code_key("smoking") | None = None  # type: ignore[valid-type]


class TreatmentRecord(_Model):
    """A treatment the spa itself performed."""

    id: Identifier
    date: PastDateTime | PastDate
    treatment: code_key("treatment")  # type: ignore[valid-type]
    product: ShortText | None = None
    lot: ShortText | None = None
    amount: Decimal | None = Field(default=None, gt=0, max_digits=12)
    unit: code_key("unit", keep_case=True) | None = None  # type: ignore[valid-type]
    body_sites: list[code_key("body_site")] = []  # type: ignore[valid-type]
    practitioner: ShortText | None = None
    practitioner_npi: Identifier | None = None
    notes: LongText | None = None


class ConsultationNote(_Model):
    date: PastDateTime | PastDate
    author: ShortText | None = None
    text: LongText
