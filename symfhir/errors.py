"""The one exception tree of symfhir.

    SymfhirError                 root: everything symfhir raises on purpose
    ├── ConfigError              a mapping file, code table or setting is unusable
    ├── RecordError              one input record is invalid (names record, field, reason)
    │   ├── PhotoError           an image or signed form is unreadable, too big, or not allowed
    │   └── CardNumberError      a payment card number was found in a free-text field
    └── FhirValidationError      a produced or given FHIR resource breaks the rules

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
