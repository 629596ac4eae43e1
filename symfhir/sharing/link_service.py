"""What the public SMART Health Link service (``smart_app.links``) may do on the FHIR server,
as its own SMART Backend Services client (``symfhir-links`` in the demo): write the
disclosure AuditEvent of each manifest served, and read and search the client's Consents for
the re-check before it (``symfhir.sharing.gate.consent_active``). Nothing else: the links
and their encrypted files are in the app's store, not on the FHIR server."""

from __future__ import annotations

#: SMART v2 system scopes, least privilege (search is ``s``: the re-check searches Consents).
LINKS_SCOPE = "system/AuditEvent.c system/Consent.rs"
