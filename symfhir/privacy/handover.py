"""Handing an access package over at the desk (``hand_over_package``): the ZIP the access
handler wrote for a completed access, portability or CCPA right-to-know request, found by
the Task's ``access-package`` output in the package folder, and the hand-over recorded as a
HIPAA disclosure to the requester (``symfhir.export.access_request.record_handover``, the
same record as a download from the portal) before a byte leaves.

The file is named only by the Task's output, and only a plain file name of the access
handler's own shape is accepted: never a path, never anything from the request's inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from symfhir.audit import AuditTrail
from symfhir.errors import ExportError, PrivacyRequestError
from symfhir.export.access_request import KINDS, OUTPUT_LABEL, package_dir, record_handover
from symfhir.fhir import FhirClient
from symfhir.privacy.model import COMPLETED, PARTIALLY_COMPLETED
from symfhir.privacy.requests import get_request
from symfhir.privacy.tasks import Settings, TrackedRequest
from symfhir.workspace.actor import Actor

#: The names ``symfhir.export.access_request`` gives its packages (no separator, no "..").
PACKAGE_NAME = re.compile(r"access-[A-Za-z0-9.-]{1,64}-\d{8}T\d{6}-[0-9a-f]{16}\.zip")


@dataclass(frozen=True)
class Package:
    """An access package ready to hand over: where it is, the name to download it as, its
    size in bytes, and the request it answers."""

    path: Path
    name: str
    size: int
    request: TrackedRequest


def package_name(item: TrackedRequest) -> str | None:
    """The file name the request's ``access-package`` output names, None without one."""
    for output in item.request.outputs:
        if output.label == OUTPUT_LABEL and output.attachment:
            url = output.attachment.get("url")
            return url if isinstance(url, str) else None
    return None


def can_hand_over(item: TrackedRequest) -> bool:
    """Whether the request has a package to hand over (a completed access-kind request whose
    Task names one); the file itself is checked by ``hand_over_package``."""
    request = item.request
    return (
        request.kind in KINDS
        and request.business_status in (COMPLETED, PARTIALLY_COMPLETED)
        and package_name(item) is not None
    )


def hand_over_package(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    *,
    patient_id: str,
    now: datetime,
    audit: AuditTrail,
    directory: Path | None = None,
    settings: Settings | None = None,
) -> Package:
    """The access package of request ``task_id`` for the client ``patient_id`` at the desk;
    the hand-over is recorded first, as a disclosure to the requester (purpose PATRQT).

    ``directory`` defaults to the access handler's folder (SYMFHIR_EXPORT_DIR). Raises
    PrivacyRequestError when the request is another client's, not an access kind, not
    completed or names no package; ExportError when the named file is not a package name or is
    gone (nothing is recorded then); NotAllowedError when the session may not read the Task.
    """
    item = get_request(client, actor, task_id, now=now, audit=audit, settings=settings)
    request = item.request
    if request.patient_id != patient_id:
        raise PrivacyRequestError(f"Task/{task_id} is not this client's request")
    if not can_hand_over(item):
        raise PrivacyRequestError(f"Task/{task_id} has no access package to hand over")
    name = package_name(item) or ""
    if not PACKAGE_NAME.fullmatch(name):
        raise ExportError(f"Task/{task_id}: the access package's name is not one symfhir gives")
    folder = (directory or package_dir()).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        raise ExportError(f"Task/{task_id}: the access package is no longer on file")
    record_handover(audit, request, via="desk")
    return Package(path, name, path.stat().st_size, item)
