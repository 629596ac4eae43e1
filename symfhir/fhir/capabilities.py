"""What a FHIR server says it can do: its CapabilityStatement, read into ``Capabilities``.

https://hl7.org/fhir/R4/capabilitystatement.html

symfhir writes R4 (4.0.x) only, so a statement for another version, or one without a server
``rest`` part, is refused (FhirCapabilityError). Callers ask before writing, e.g.
``caps.require("Media", "create", "store photos")``, and fall back where the architecture says
so (DocumentReference instead of Media or Consent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from symfhir.errors import FhirCapabilityError

TYPE_INTERACTIONS = frozenset(
    {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    }
)
SYSTEM_INTERACTIONS = frozenset({"transaction", "batch", "search-system", "history-system"})
OPERATION = "check server capabilities"


@dataclass(frozen=True)
class Capabilities:
    """The server's FHIR version, per-type interactions, system interactions and operations."""

    fhir_version: str
    resources: Mapping[str, frozenset[str]]
    system_interactions: frozenset[str] = frozenset()
    system_operations: frozenset[str] = frozenset()
    resource_operations: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    software: str = ""

    @classmethod
    def from_statement(cls, statement: object) -> Capabilities:
        """Read a CapabilityStatement resource (a dict).

        Raises FhirCapabilityError when it is not a CapabilityStatement, is not R4, or has no
        server ``rest`` part.
        """
        if not isinstance(statement, dict) or statement.get("resourceType") != (
            "CapabilityStatement"
        ):
            raise _error("the server's /metadata is not a CapabilityStatement")
        version = statement.get("fhirVersion")
        if not isinstance(version, str) or not version.startswith("4.0."):
            shown = version if isinstance(version, str) and len(version) < 20 else "unknown"
            raise _error(f"the server speaks FHIR {shown}, symfhir needs R4 (4.0.x)")
        rests = [r for r in statement.get("rest") or [] if isinstance(r, dict)]
        rest = next((r for r in rests if r.get("mode") == "server"), None)
        if rest is None:
            raise _error("the CapabilityStatement has no server 'rest' part")

        resources: dict[str, frozenset[str]] = {}
        resource_operations: dict[str, frozenset[str]] = {}
        for resource in rest.get("resource") or []:
            if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
                continue
            name = resource["type"]
            resources[name] = _codes(resource.get("interaction"))
            resource_operations[name] = _operations(resource.get("operation"))
        software = statement.get("software")
        return cls(
            fhir_version=version,
            resources=MappingProxyType(resources),
            system_interactions=_codes(rest.get("interaction")),
            system_operations=_operations(rest.get("operation")),
            resource_operations=MappingProxyType(resource_operations),
            software=_software(software),
        )

    def can(self, resource_type: str, interaction: str) -> bool:
        """Whether the server supports ``interaction`` ("create", "read", ...) on the type.

        Raises ValueError for an interaction name R4 does not define (a typo).
        """
        if interaction not in TYPE_INTERACTIONS:
            raise ValueError(f"not an R4 type interaction: {interaction!r}")
        return interaction in self.resources.get(resource_type, frozenset())

    def can_system(self, interaction: str) -> bool:
        """Whether the server supports a system interaction ("transaction", "batch", ...).

        Raises ValueError for an interaction name R4 does not define.
        """
        if interaction not in SYSTEM_INTERACTIONS:
            raise ValueError(f"not an R4 system interaction: {interaction!r}")
        return interaction in self.system_interactions

    def has_operation(self, name: str, resource_type: str | None = None) -> bool:
        """Whether the server declares operation ``name`` ("everything" or "$everything"),
        on ``resource_type`` if given (system-level declarations count too)."""
        name = name.removeprefix("$")
        if name in self.system_operations:
            return True
        if resource_type is None:
            return any(name in ops for ops in self.resource_operations.values())
        return name in self.resource_operations.get(resource_type, frozenset())

    def require(self, resource_type: str, interaction: str, purpose: str) -> None:
        """Raise FhirCapabilityError unless ``can(resource_type, interaction)``.

        ``purpose`` says why symfhir needs it: "server cannot create Media (needed to store
        photos)".
        """
        if not self.can(resource_type, interaction):
            raise _error(f"server cannot {interaction} {resource_type} (needed to {purpose})")

    def require_system(self, interaction: str, purpose: str) -> None:
        """Raise FhirCapabilityError unless ``can_system(interaction)``."""
        if not self.can_system(interaction):
            raise _error(f"server does not support {interaction} (needed to {purpose})")


def _error(reason: str) -> FhirCapabilityError:
    return FhirCapabilityError(OPERATION, reason, log_text=f"{OPERATION}: {reason}")


def _codes(interactions: object) -> frozenset[str]:
    if not isinstance(interactions, list):
        return frozenset()
    return frozenset(
        i["code"] for i in interactions if isinstance(i, dict) and isinstance(i.get("code"), str)
    )


def _operations(operations: object) -> frozenset[str]:
    if not isinstance(operations, list):
        return frozenset()
    return frozenset(
        o["name"].removeprefix("$")
        for o in operations
        if isinstance(o, dict) and isinstance(o.get("name"), str)
    )


def _software(software: object) -> str:
    if not isinstance(software, dict):
        return ""
    parts = [software.get("name"), software.get("version")]
    return " ".join(p for p in parts if isinstance(p, str))
