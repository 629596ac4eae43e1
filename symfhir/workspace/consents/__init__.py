"""Consents of the practitioner's workspace: status and history, capture, withdrawal (pure).

Form fields in, FHIR R4 resources out (hl7.org/fhir/R4/consent.html), no I/O and no clock
reads: ``now`` comes in through the MappingContext. The Consent itself is built by
``symfhir.mapping.consent`` from a ``ConsentRecord`` (the templates of
``mappings/consent-kinds.yaml``); this module adds what a capture at the desk has and an
import has not: the exact capture instant, who signed, and the signed form (a PNG of the
drawn or typed signature). A withdrawal updates the active Consent to ``inactive`` with
``provision.period.end``: it is a new status, never a delete.

Modules:

- ``status`` — every consent kind with its history and current status;
- ``signature`` — a drawn or typed signature as a clean PNG (the signed form);
- ``guardians`` — the parents and guardians on file (RelatedPerson), the one who signs, a new one;
- ``capture`` — the capture form checked, and the Consent and Provenance it writes;
- ``sharing_terms`` — a physician-sharing consent's scopes, date range and physician;
- ``withdrawal`` — the update of a given Consent to ``inactive``;
- ``writes`` — the Provenance and the R4 check that capture and withdrawal share.

The names below are re-exported so ``symfhir.workspace.consents.X`` keeps working.
"""

from symfhir.mapping.provenance import AGENT_TYPE, DATA_OPERATION
from symfhir.workspace.consents.capture import (
    DECISIONS,
    SIGNERS,
    Capture,
    Decision,
    Signer,
    capture_bundle,
    capture_entries,
    parse_capture,
)
from symfhir.workspace.consents.guardians import (
    NEW,
    NEW_RELATIONSHIPS,
    SIGNING_RELATIONSHIPS,
    Guardian,
    guardian_entry,
    guardians_on_file,
    parse_guardian,
)
from symfhir.workspace.consents.signature import (
    DATA_URL_PREFIX,
    NAME_MAX,
    SIGNATURE_LIMITS,
    SIGNATURE_MAX_BYTES,
    SIGNATURE_MAX_HEIGHT,
    SIGNATURE_MAX_WIDTH,
    TYPED_FONT_SIZE,
    TYPED_PADDING,
    decode_data_url,
    render_typed_signature,
    signature_form,
    signature_png,
)
from symfhir.workspace.consents.status import (
    KIND_SYSTEM,
    ConsentEvent,
    KindStatus,
    basis_of,
    consent_kind_of,
    consent_overview,
    consent_status,
    current_policy_version,
    is_minor,
    patient_age,
    physician_on_file,
    policy_version,
)
from symfhir.workspace.consents.withdrawal import (
    CHANGED_MEANWHILE,
    find_withdrawable,
    withdrawal_bundle,
    withdrawn_consent,
)
from symfhir.workspace.consents.writes import check_valid, provenance_entry

__all__ = [
    "AGENT_TYPE",
    "CHANGED_MEANWHILE",
    "DATA_OPERATION",
    "DATA_URL_PREFIX",
    "DECISIONS",
    "KIND_SYSTEM",
    "NAME_MAX",
    "NEW",
    "NEW_RELATIONSHIPS",
    "SIGNATURE_LIMITS",
    "SIGNATURE_MAX_BYTES",
    "SIGNATURE_MAX_HEIGHT",
    "SIGNATURE_MAX_WIDTH",
    "SIGNERS",
    "SIGNING_RELATIONSHIPS",
    "TYPED_FONT_SIZE",
    "TYPED_PADDING",
    "Capture",
    "ConsentEvent",
    "Decision",
    "Guardian",
    "KindStatus",
    "Signer",
    "basis_of",
    "capture_bundle",
    "capture_entries",
    "check_valid",
    "consent_kind_of",
    "consent_overview",
    "consent_status",
    "current_policy_version",
    "decode_data_url",
    "find_withdrawable",
    "guardian_entry",
    "guardians_on_file",
    "is_minor",
    "parse_capture",
    "parse_guardian",
    "patient_age",
    "physician_on_file",
    "policy_version",
    "provenance_entry",
    "render_typed_signature",
    "signature_form",
    "signature_png",
    "withdrawal_bundle",
    "withdrawn_consent",
]
