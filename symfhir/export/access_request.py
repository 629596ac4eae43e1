"""The privacy-request handler for access, portability and the CCPA right to know: the
client's access package (the export ZIP) built into the package folder and returned as the
Task's ``access-package`` output.

The folder is ``SYMFHIR_EXPORT_DIR`` (default ``./out/packages``); the file name carries the
request's Task id and a random part, and the attachment's ``url`` is that file name relative
to the folder (the portal's short-lived download links, or the desk, hand it over).

Building the package is recorded as a disclosure to the requester (``package_recipient``:
their name from the request, purpose PATRQT); handing it over (a download from the portal's
status page, or at the desk) is recorded by ``record_handover``.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from symfhir.audit import AuditTrail, DisclosureTo
from symfhir.errors import ExportError
from symfhir.export.workflow import export_patient
from symfhir.fhir import FhirClient
from symfhir.privacy.model import COMPLETED, Outcome, PrivacyRequest, TaskOutput
from symfhir.workspace.actor import Actor

KINDS = ("access", "portability", "ccpa-know")
EXPORT_DIR_ENV = "SYMFHIR_EXPORT_DIR"
DEFAULT_EXPORT_DIR = Path("out") / "packages"
OUTPUT_LABEL = "access-package"


def package_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder access packages are written to."""
    configured = environ.get(EXPORT_DIR_ENV, "").strip()
    return Path(configured) if configured else DEFAULT_EXPORT_DIR


def package_recipient(request: PrivacyRequest) -> DisclosureTo:
    """Who an access package is disclosed to: the requester as the request names them (an
    authorized agent by their own name, for the client), at the client's request (PATRQT);
    the client's Patient is the recipient's reference when they asked themselves."""
    requester = request.requester
    name = requester.name.strip() or "the requester"
    if requester.agent:
        return DisclosureTo(f"{requester.agent.strip()} (authorized agent of {name})", "PATRQT")
    reference = f"Patient/{request.patient_id}" if request.patient_id else None
    return DisclosureTo(name, "PATRQT", reference)


def record_handover(
    audit: AuditTrail, request: PrivacyRequest, *, via: str, success: bool = True
) -> None:
    """Record that the request's access package was handed over ``via`` ("portal download",
    "desk"), as a disclosure to the requester (``package_recipient``) in the client's
    accounting. Call it once the file has been sent (``success=False`` when the transfer
    failed). Never raises (an AuditTrail does not)."""
    resources = [f"Task/{request.task_id}"] if request.task_id else []
    if request.patient_id:
        resources.insert(0, f"Patient/{request.patient_id}")
    what = "handed over" if success else "not handed over (the transfer failed)"
    audit(
        "read",
        success=success,
        description=f"access package {what}: {via}",
        resources=resources,
        disclosure=package_recipient(request),
    )


def handle(
    client: FhirClient,
    actor: Actor,
    request: PrivacyRequest,
    *,
    now: datetime,
    audit: AuditTrail,
) -> Outcome:
    """Build the access package of the request's client and answer it as completed.

    Raises ExportError for a request of another kind or not matched to a client yet, and
    what ``export_patient`` raises (no package is left behind then).
    """
    if request.kind not in KINDS:
        raise ExportError(f"an access package answers {', '.join(KINDS)}, not {request.kind}")
    if request.patient_id is None:
        raise ExportError("the request is not matched to a client yet")
    task = re.sub(r"[^A-Za-z0-9.-]", "_", request.task_id or "request")[:64]
    # The random part keeps a package's name unguessable even where Task ids are sequential.
    name = f"access-{task}-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(8)}.zip"
    path = package_dir() / name
    result = export_patient(
        client,
        actor,
        request.patient_id,
        path,
        fmt="zip",
        to=package_recipient(request),
        now=now,
        audit=audit,
    )
    attachment = {
        "contentType": "application/zip",
        "url": name,
        "title": f"Access package ({result.resources} records, {result.photos} photos)",
        "size": result.size,
        "hash": result.sha1_base64,
        "creation": now.isoformat(timespec="seconds"),
    }
    summary = (
        f"Access package ready: {result.resources} records, {result.photos} photos, "
        f"{result.size} bytes"
    )
    return Outcome(
        business_status=COMPLETED,
        outputs=(TaskOutput(OUTPUT_LABEL, attachment=attachment),),
        summary=summary,
    )
