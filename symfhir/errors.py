"""The one exception tree of symfhir.

    SymfhirError                 root: everything symfhir raises on purpose
    ├── ConfigError              a mapping file, code table or setting is unusable
    ├── RecordError              one input record is invalid (names record, field, reason)
    │   ├── PhotoError           an image or signed form is unreadable, too big, or not allowed
    │   └── CardNumberError      a payment card number was found in a free-text field
    ├── FhirValidationError      a produced or given FHIR resource breaks the rules
    ├── StoreError               the app's own store (symfhir.store) cannot be opened or written
    ├── RateLimited              too many verification codes for one address or requester;
    │                            ``retry_after`` says how many seconds to wait
    ├── DeliveryError            an e-mail or text message was not handed over; names the
    │                            server (never the recipient), says if a retry may succeed
    ├── NotAllowedError          a workflow's user may not do this: a read-only session, or
    │                            the server did not grant the types it writes
    ├── ExportError              an export cannot be made as asked (format, password, id)
    ├── UnsubscribeLinkError     a marketing unsubscribe link is tampered, expired or
    │                            unreadable (``symfhir.marketing.unsubscribe``)
    ├── PrivacyRequestError      a privacy request cannot take this step now (not verified,
    │                            not matched, already extended, closed, no handler for its kind)
    ├── SmartError               a SMART App Launch step failed; carries the spec's
    │   │                        ``error`` code and ``description`` (``symfhir.smart``)
    │   ├── DiscoveryError       .well-known/smart-configuration unreachable or unusable
    │   ├── AuthorizationError   the authorize step came back with an error, or its answer
    │   │                        does not match a launch started here (state)
    │   ├── TokenError           the token endpoint refused, or answered no bearer token
    │   └── IdTokenError         the id_token's signature or claims did not check out
    │       └── MfaRequiredError the id_token shows no multi-factor sign-in (when required)
    └── FhirServerError          a FHIR server refused a request or could not be reached
        ├── FhirTransportError   no usable answer: connection refused/reset, timeout,
        │                        retries exhausted (status is None or the last 429/5xx)
        ├── FhirResponseError    an answer that is not FHIR: malformed JSON, an HTML page,
        │                        a body over the size limit
        ├── FhirAuthError        401/403: missing, expired or insufficient credentials
        ├── FhirNotFoundError    404/410: the resource does not exist (or was deleted)
        ├── FhirConflictError    409/412: version conflict (If-Match) or a conditional
        │                        create that matched several resources
        ├── FhirRequestError     other 4xx: the server refused the content (its
        │                        OperationOutcome says what and where)
        └── FhirCapabilityError  the server's CapabilityStatement lacks an interaction we need

Library code never exits the process; the CLI turns these into exit codes in one
place (``symfhir.cli``).
"""

from __future__ import annotations


class SymfhirError(Exception):
    """Root of every error symfhir raises on purpose."""


class ConfigError(SymfhirError):
    """A mapping file, code table or setting cannot be used."""


class RecordError(SymfhirError):
    """One input record is invalid.

    ``record`` names the record (e.g. ``clients.csv row 12`` or a client id),
    ``field`` the offending field, ``reason`` what is wrong. Messages never
    quote free-text values, so they are safe to log (no PHI).
    """

    def __init__(self, record: str, field: str, reason: str) -> None:
        self.record = record
        self.field = field
        self.reason = reason
        super().__init__(f"{record}: {field}: {reason}")


class PhotoError(RecordError):
    """An image or signed form cannot be accepted."""


class CardNumberError(RecordError):
    """A payment card number appeared in a free-text field."""


class FhirValidationError(SymfhirError):
    """A FHIR resource breaks structural or project rules.

    ``problems`` is a list of ``(path, message)`` pairs.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        first = problems[0] if problems else ("", "invalid")
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first[0]}: {first[1]}{more}")


class FhirServerError(SymfhirError):
    """A FHIR server refused a request or could not be reached.

    ``operation`` says what was attempted (``"create Patient"``, ``"transaction"``),
    ``status`` is the HTTP status (None when no answer came), ``issues`` the parsed
    OperationOutcome issues as ``(severity, code, diagnostics, expression)`` tuples,
    ``body`` the raw response text (may hold PHI: never log it), ``log_text`` a
    PHI-free one-line summary safe for logs.
    """

    def __init__(
        self,
        operation: str,
        reason: str,
        status: int | None = None,
        issues: list[tuple[str, str, str, str]] | None = None,
        body: str = "",
        log_text: str = "",
    ) -> None:
        self.operation = operation
        self.reason = reason
        self.status = status
        self.issues = issues or []
        self.body = body
        # Without a server's body or issues the reason is symfhir's own words: safe to log.
        self.log_text = log_text or (
            f"{operation}: {reason}" if not body and not issues else f"{operation}: HTTP {status}"
        )
        where = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{operation}{where}: {reason}")


class FhirTransportError(FhirServerError):
    """No usable answer: connection refused or reset, timeout, retries exhausted."""


class FhirResponseError(FhirServerError):
    """The answer is not FHIR: malformed JSON, an HTML page, a body over the size limit."""


class FhirAuthError(FhirServerError):
    """401/403: missing, expired or insufficient credentials."""


class FhirNotFoundError(FhirServerError):
    """404/410: the resource does not exist or was deleted."""


class FhirConflictError(FhirServerError):
    """409/412: a version conflict, or a conditional create that matched several."""


class FhirRequestError(FhirServerError):
    """Any other 4xx: the server refused the content."""


class FhirCapabilityError(FhirServerError):
    """The server's CapabilityStatement lacks an interaction symfhir needs."""


class SmartError(SymfhirError):
    """A SMART App Launch step failed. ``error`` is the OAuth 2.0 / SMART error code (RFC 6749
    §4.1.2.1 and §5.2, OpenID Connect), ``description`` says what went wrong in words safe to
    show and log: never a token, never PHI."""

    #: The code used when the spec names none for this failure.
    default_error = "server_error"

    def __init__(self, description: str, error: str | None = None) -> None:
        self.error = error or self.default_error
        self.description = description
        super().__init__(f"{self.error}: {description}")


class DiscoveryError(SmartError):
    """The EHR's ``.well-known/smart-configuration`` cannot be read or lacks what SMART needs."""

    default_error = "invalid_configuration"


class AuthorizationError(SmartError):
    """The authorization response carries an ``error`` (e.g. access_denied, invalid_scope), or
    does not belong to a launch started here (``mismatching_state``), or has no code."""

    default_error = "invalid_request"


class TokenError(SmartError):
    """The token endpoint refused (its ``error``/``error_description``), could not be reached
    (``temporarily_unavailable``), or answered without a bearer access token."""

    default_error = "invalid_token_response"


class IdTokenError(SmartError):
    """The id_token is missing, or its signature, iss, aud, exp or nonce did not check out."""

    default_error = "invalid_id_token"


class MfaRequiredError(IdTokenError):
    """The id_token does not show multi-factor authentication (``amr`` with ``mfa``, or the
    required ``acr``) and the app requires it. RFC 9470's code for this."""

    default_error = "insufficient_user_authentication"


class ExportError(SymfhirError):
    """An export cannot be made as asked: an unknown format, a password for a format that
    cannot carry one or too short, an invalid patient id. Raised before anything is read."""


class RestoreError(SymfhirError):
    """An access package cannot be restored: not a package, a file missing or not matching
    the size and hash its record states, a reference to a resource outside the package.
    Raised before anything is written."""


class NotAllowedError(SymfhirError):
    """The acting user may not do what a workflow was asked to: the session is read-only
    (``read_only``), or the server did not grant the ``missing`` (resource type, interaction)
    pairs (interaction: c r u d s). Raised before anything is written."""

    def __init__(
        self, missing: tuple[tuple[str, str], ...] = (), *, read_only: bool = False
    ) -> None:
        self.missing = missing
        self.read_only = read_only
        what = "read-only" if read_only else ", ".join(f"{t}.{i}" for t, i in missing)
        super().__init__(f"not allowed: {what}")


class PrivacyRequestError(SymfhirError):
    """A privacy request cannot take the step asked for: its state forbids it (identity not
    verified, no client matched, already extended, already closed) or no handler exists for
    its kind. The message is symfhir's own words (no PHI): safe to show and log."""


class StoreError(SymfhirError):
    """The app's own store cannot be opened, read or written. The message names the database
    kind and what failed, never the values involved."""


class RateLimited(SymfhirError):
    """Too many verification codes were asked for one ``scope`` (``address`` or
    ``requester``) within its window; a new one may be asked in ``retry_after`` seconds."""

    def __init__(self, scope: str, retry_after: int) -> None:
        self.scope = scope
        self.retry_after = retry_after
        super().__init__(f"too many codes for this {scope}: try again in {retry_after} s")


class DeliveryError(SymfhirError):
    """An e-mail or text message could not be handed to ``server`` (host:port or URL host)
    over ``channel`` (``email``/``sms``). ``reason`` is symfhir's own words, never the
    recipient or the message; ``retryable`` says whether trying later may succeed;
    ``retry_after`` is the server's wait in seconds when it gave one."""

    def __init__(
        self,
        channel: str,
        server: str,
        reason: str,
        *,
        retryable: bool = False,
        retry_after: int | None = None,
    ) -> None:
        self.channel = channel
        self.server = server
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(f"{channel} via {server}: {reason}")


class UnsubscribeLinkError(SymfhirError):
    """A marketing unsubscribe link was tampered with, has expired, or cannot be read. The
    message says which in words safe to show (never the link's contents)."""


class SharingError(SymfhirError):
    """A share with the client's physician or another provider cannot be made as asked: a
    scope, label, passcode, expiry or target that is not valid. Raised before anything is
    read or written; the message names the field and the reason (never PHI)."""


class ConsentMissing(SharingError):
    """Deny by default: the client has no active physician-sharing consent, or it does not
    cover what was asked (``missing``: the scopes, the date range or the photo consent)."""

    def __init__(self, reason: str, missing: tuple[str, ...] = ()) -> None:
        self.reason = reason
        self.missing = missing
        super().__init__(reason)


class LinkInactive(SharingError):
    """A SMART Health Link that is unknown, revoked, expired, used up, locked after too many
    wrong passcodes, or whose consent was withdrawn: the link service answers 404 for all of
    them alike (it never says which)."""


class PasscodeRejected(SharingError):
    """A wrong passcode for a SMART Health Link; ``remaining`` attempts are left in its
    lifetime (0: the link is now inactive)."""

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        super().__init__(f"wrong passcode: {remaining} attempts left")


class PushError(SharingError):
    """A push to another provider's FHIR server could not be made: its CapabilityStatement
    cannot take what is sent, or it refused it. ``reason`` is symfhir's own words."""


class DisclosureNotRecorded(SharingError):
    """A SMART Health Link was about to be served but its disclosure AuditEvent could not be
    written: nothing is served (the accounting of disclosures must list every access)."""
