"""The Photos workspace: allowed uses from consents, the gallery, upload fields and entries.

The shaping modules are pure (no Flask, no I/O, no clock: ``now`` is passed in); the two
workflow modules read and write through the FHIR client they are given. FHIR R4 Media
(hl7.org/fhir/R4/media.html), Consent (consent.html), Binary (binary.html) and
Provenance (provenance.html) in, view models and transaction entries out.

A photo may be used for a purpose only when the client's latest Consent of that
purpose's kind is active (given, not declined or withdrawn) and dated on or before
the day the photo was taken. A photo without a marketing consent is never shown as
usable for marketing.

Modules:

- ``consents`` — the uses a photo may serve, from the client's latest Consent of each kind,
  and why a clinical photo may not be stored;
- ``gallery`` — the patient's Media, newest first, with treatments, body sites and allowed
  uses; the Binary a Media names on this server;
- ``upload`` — the upload form checked, the client key, and the Binary, Media and Provenance
  entries it writes;
- ``viewing`` — workflows: the gallery, one photo's image, a before/after comparison;
- ``uploading`` — workflow: an upload from form fields and files to one transaction and a
  line per file.

The names below are re-exported so ``symfhir.workspace.photos.X`` keeps working.
"""

from symfhir.workspace.photos.consents import (
    CONSENT_KIND_SYSTEM,
    USES,
    ConsentState,
    Use,
    allowed_uses,
    clinical_consent_problem,
    consent_states,
    local_date,
)
from symfhir.workspace.photos.gallery import (
    PHASES,
    Gallery,
    Option,
    PhotoItem,
    binary_id,
    build_gallery,
    treatment_options,
)
from symfhir.workspace.photos.upload import (
    FORM_FIELDS,
    UploadFields,
    client_key,
    parse_upload_fields,
    upload_entries,
    upload_provenance,
)

__all__ = [
    "CONSENT_KIND_SYSTEM",
    "FORM_FIELDS",
    "PHASES",
    "USES",
    "ConsentState",
    "Gallery",
    "Option",
    "PhotoItem",
    "UploadFields",
    "Use",
    "allowed_uses",
    "binary_id",
    "build_gallery",
    "client_key",
    "clinical_consent_problem",
    "consent_states",
    "local_date",
    "parse_upload_fields",
    "treatment_options",
    "upload_entries",
    "upload_provenance",
]
