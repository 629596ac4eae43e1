"""What the requester is told by e-mail when their request's deadline is extended (HIPAA
164.524(b)(2): the reason and the date by which the spa will answer). Pure: the text only;
sending is the caller's (``symfhir.notify.email``)."""

from __future__ import annotations

from dataclasses import dataclass

from symfhir.privacy.model import PrivacyRequest
from symfhir.spa import Spa
from symfhir.terminology import load_terminology


@dataclass(frozen=True)
class Notice:
    to: str
    subject: str
    text: str


def extension_notice(request: PrivacyRequest, spa: Spa) -> Notice | None:
    """The extension notice for an extended request; None when the request gives no e-mail
    or was not extended. Names the kind, the new due date and the reason, nothing else of the
    record."""
    if not request.requester.email or request.extended_reason is None:
        return None
    kind = load_terminology().coding("privacy_request", request.kind)["display"]
    text = "\n".join(
        [
            f"Dear {request.requester.name},",
            "",
            f"We need more time to answer your privacy request ({kind}, received "
            f"{request.received.astimezone(spa.zone):%B %d, %Y}).",
            f"Reason: {request.extended_reason}",
            f"We will answer by {request.due:%B %d, %Y}.",
            "",
            "This is the only extension we take. Reply to this e-mail with any question.",
            "",
            spa.name,
        ]
    )
    return Notice(request.requester.email, f"Your privacy request: answer by {request.due}", text)
