"""Who runs a workflow: the practitioner, as the FHIR server knows them, and what they may do."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from symfhir.errors import NotAllowedError

#: (resource type, interaction: one of c r u d s) -> allowed
Permits = Callable[[str, str], bool]


@dataclass(frozen=True)
class Actor:
    """The acting user of a workflow.

    ``fhir_user`` is the practitioner's FHIR reference (``Practitioner/12``: SMART's fhirUser),
    None when the server did not say; ``display`` a name for records that show one. ``permits``
    says which interactions the server granted (the SMART scopes of a launch); None means all
    (the command line, with credentials of its own). ``writable`` is False for a read-only
    session: the workflow then writes nothing.
    """

    fhir_user: str | None
    display: str | None = None
    permits: Permits | None = None
    writable: bool = True

    def may(self, resource_type: str, interaction: str) -> bool:
        return self.permits is None or self.permits(resource_type, interaction)

    def require(self, needs: Iterable[tuple[str, str]]) -> None:
        """Raise NotAllowedError naming the (type, interaction) pairs of ``needs`` not granted,
        or ``read_only`` in a read-only session, before anything is written."""
        if not self.writable:
            raise NotAllowedError((), read_only=True)
        missing = tuple(dict.fromkeys(n for n in needs if not self.may(*n)))
        if missing:
            raise NotAllowedError(missing)
