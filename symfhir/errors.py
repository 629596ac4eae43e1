"""The one exception tree of symfhir.

    SymfhirError                 root: everything symfhir raises on purpose
    ├── ConfigError              a mapping file, code table or setting is unusable
    ├── RecordError              one input record is invalid (names record, field, reason)
    │   ├── PhotoError           an image or signed form is unreadable, too big, or not allowed
    │   └── CardNumberError      a payment card number was found in a free-text field
    ├── FhirValidationError      a produced or given FHIR resource breaks the rules
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
