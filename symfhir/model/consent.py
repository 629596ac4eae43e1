"""A client's consent of one kind: given, declined or withdrawn, and who signed it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from symfhir.consent_kinds import load_consent_kinds
from symfhir.model.fields import PastDate, ShortText, context, normalize_key

ConsentStatus = Literal["given", "declined", "withdrawn"]
Signer = Literal["client", "guardian"]


class SignedForm(BaseModel):
    """A signed consent form (PDF or image), already checked and cleaned at the edge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    content_type: str
    data: bytes
    size: int
    sha1_b64: str


class ConsentRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    kind: str
    status: ConsentStatus
    date: PastDate
    signer: Signer = "client"
    policy_version: ShortText
    withdrawn_on: PastDate | None = None
    form: SignedForm | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: object, info: ValidationInfo) -> object:
        value = normalize_key(value)
        kinds = context(info).get("consent_kinds") or load_consent_kinds()
        if value not in kinds.kinds:
            raise ValueError(f"unknown consent kind; allowed: {', '.join(sorted(kinds.kinds))}")
        return value

    @field_validator("status", "signer", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _withdrawal_dated(self) -> ConsentRecord:
        if self.status == "withdrawn":
            if self.withdrawn_on is None:
                raise ValueError("a withdrawn consent needs withdrawn_on (the withdrawal date)")
            if self.withdrawn_on < self.date:
                raise ValueError("withdrawn_on is before the date the consent was given")
        elif self.withdrawn_on is not None:
            raise ValueError("withdrawn_on is set but the status is not 'withdrawn'")
        return self
