"""What the requester of a correction is told by e-mail of each outcome (HIPAA 164.526(c)(2),
(d)(1)): accepted, denied (the basis, the right to file a statement of disagreement, how to
complain), and their statement of disagreement received. PHI-minimal: the request's kind and
date, the reason given; never the record's content or the corrected text. Pure: sending is
the caller's (``symfhir.privacy.commands.send_email``)."""

from __future__ import annotations

from symfhir.privacy.model import PrivacyRequest
from symfhir.privacy.notices import Notice
from symfhir.spa import Spa

#: HIPAA 164.526(d)(1)(ii)-(iv), in plain words; also kept on the denied Task.
DISAGREEMENT_RIGHTS = (
    "You may file a written statement disagreeing with this decision and saying why: reply "
    "to this e-mail or hand it in at the front desk. We keep it with your record and include "
    "it whenever we disclose the part of your record it concerns. If you do not file one, you "
    "may ask us to include your request and this denial with any later disclosure of it. "
    "You may also complain to our privacy officer, or to the Secretary of the U.S. Department "
    "of Health and Human Services (Office for Civil Rights)."
)


def _notice(request: PrivacyRequest, spa: Spa, subject: str, lines: list[str]) -> Notice | None:
    if not request.requester.email:
        return None
    received = request.received.astimezone(spa.zone)
    text = "\n".join(
        [
            f"Dear {request.requester.name},",
            "",
            f"About your request to correct your record, received {received:%B %d, %Y}:",
            *lines,
            "",
            "Reply to this e-mail with any question.",
            "",
            spa.name,
        ]
    )
    return Notice(request.requester.email, subject, text)


def accepted_notice(request: PrivacyRequest, spa: Spa) -> Notice | None:
    """The correction was made; None when the request gives no e-mail."""
    return _notice(
        request,
        spa,
        "Your correction request: accepted",
        [
            "we have accepted it and amended your record. Tell us of anyone who should "
            "receive the correction and we will send it to them."
        ],
    )


def denied_notice(request: PrivacyRequest, spa: Spa, reason: str) -> Notice | None:
    """The denial's basis and the requester's rights; None when no e-mail is given."""
    return _notice(
        request,
        spa,
        "Your correction request: denied",
        [f"we have denied it. Reason: {reason}", "", DISAGREEMENT_RIGHTS],
    )


def disagreement_notice(request: PrivacyRequest, spa: Spa) -> Notice | None:
    """The statement of disagreement is on file; None when no e-mail is given."""
    return _notice(
        request,
        spa,
        "Your statement of disagreement: received",
        [
            "we have received your statement of disagreement. It is kept with your record "
            "and included whenever we disclose the part of your record it concerns."
        ],
    )
