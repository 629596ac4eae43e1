"""One spa client's whole record, with the rules that span its parts."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from symfhir.model.age import ADULT_AGE, MINOR, age_on, age_status
from symfhir.model.client import Client
from symfhir.model.consent import ConsentRecord
from symfhir.model.fields import today_of
from symfhir.model.health import ConsultationNote, HealthHistory, TreatmentRecord

__all__ = ["ADULT_AGE", "SpaRecord", "age_on"]


class SpaRecord(BaseModel):
    """Everything the spa holds on one client, validated as a whole.

    Validation needs a context: ``today`` (a date), and optionally
    ``terminology``, ``consent_kinds``, ``card_numbers`` ("reject"/"mask").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    client: Client
    health: HealthHistory
    consents: dict[str, ConsentRecord] = {}
    treatments: list[TreatmentRecord] = []
    notes: list[ConsultationNote] = []

    @model_validator(mode="before")
    @classmethod
    def _consent_kind_keys(cls, data: object) -> object:
        # The kind is the dict key; copy it in so each ConsentRecord is self-describing.
        if isinstance(data, dict) and isinstance(data.get("consents"), dict):
            consents = {}
            for key, value in data["consents"].items():
                if isinstance(value, dict):
                    value = {"kind": key, **value}
                consents[key] = value
            data = {**data, "consents": consents}
        return data

    def is_minor(self, day: date) -> bool:
        return age_status(self.client.birth_date, day) == MINOR

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> SpaRecord:
        today = today_of(info)
        birth = self.client.birth_date
        for kind, consent in self.consents.items():
            if consent.kind != kind:
                raise ValueError(f"consents.{kind}: kind does not match its key")
            if consent.date < birth:
                raise ValueError(f"consents.{kind}.date: is before the client's birth date")
            if consent.signer == "guardian" and self.client.guardian is None:
                raise ValueError(
                    f"consents.{kind}.signer: signed by a guardian but none is on file"
                )
        if self.health.intake_date < birth:
            raise ValueError("health.intake_date: is before the client's birth date")
        self._check_minor(today)
        ids = [t.id for t in self.treatments]
        if len(ids) != len(set(ids)):
            raise ValueError("treatments: treatment ids must be unique within a client")
        return self

    def _check_minor(self, today: date) -> None:
        """The policy serves adults; a minor only with a parent's or guardian's consent.

        Age counts on the day that matters: today and the intake day for the guardian
        and the treatment consent, each consent's own date for who had to sign it (a
        client who has turned 18 since keeps the guardian-signed consents of then).
        """
        birth = self.client.birth_date
        minor_now = age_status(birth, today) == MINOR
        minor_at_intake = age_status(birth, self.health.intake_date) == MINOR
        if (minor_now or minor_at_intake) and self.client.guardian is None:
            raise ValueError("client.guardian: the client is under 18 and no guardian is on file")
        if minor_at_intake:
            treatment = self.consents.get("treatment")
            if treatment is None or treatment.status != "given" or treatment.signer != "guardian":
                raise ValueError(
                    "consents.treatment: the client was under 18 at intake; treatment consent "
                    "must be given and signed by the guardian"
                )
        for kind, consent in self.consents.items():
            if age_status(birth, consent.date) == MINOR and consent.signer != "guardian":
                raise ValueError(
                    f"consents.{kind}.signer: the client was under 18 on that date; "
                    "the guardian must sign"
                )
