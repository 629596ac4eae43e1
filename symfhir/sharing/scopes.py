"""The physician-sharing scopes of ``mappings/sharing.yaml``: the resource types each lets
leave, what ``full`` covers, the types that never leave, the element that dates each type, and
the consent kinds a share short of ``full`` may carry.

Deny by default: a type no scope of a share lists is not shared (``types_of``); ``full`` is
the patient compartment (``mappings/patient-compartment.yaml``) less ``never``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.fhir.compartment import load_compartment
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

SHARING_FILE = MAPPINGS_DIR / "sharing.yaml"
SCOPE_SYSTEM = "http://symfhir.org/fhir/CodeSystem/share-scope"
#: The scope every physician-sharing consent and every share includes.
SUMMARY = "summary"
PHOTOS = "photos"
FULL = "full"


@dataclass(frozen=True)
class ShareScope:
    """One scope: its code, label, Coding, the resource types it lets leave, the scopes it
    covers besides itself (``full``: summary, intake, treatments), and the consent kind a
    share of it also needs (``photos``: photos_clinical)."""

    code: str
    label: str
    coding: Mapping[str, str]
    types: frozenset[str]
    covers: frozenset[str] = frozenset()
    needs_consent: str | None = None


@dataclass(frozen=True)
class Sharing:
    """The sharing rules: scopes in the order of the file, never-shared types, standing
    (range-free) types, each type's dating elements, and the image types of photo files."""

    system: str
    scopes: Mapping[str, ShareScope]
    never: frozenset[str]
    standing: frozenset[str]
    dated_by: Mapping[str, tuple[str, ...]]
    photo_content_types: frozenset[str]
    #: The consent kinds whose Consents a share short of ``full`` may carry.
    consent_kinds: frozenset[str] = frozenset()

    def scope(self, code: str) -> ShareScope:
        """The scope ``code`` names. Raises KeyError for an unknown code."""
        return self.scopes[code]

    def closure(self, codes: Iterable[str]) -> frozenset[str]:
        """``codes`` with ``summary`` and every scope they cover (unknown codes dropped)."""
        out = {SUMMARY}
        for code in codes:
            if code in self.scopes:
                out.add(code)
                out |= self.scopes[code].covers
        return frozenset(out)

    def types_of(self, codes: Iterable[str]) -> frozenset[str]:
        """The resource types the scopes ``codes`` let leave (summary always included).

        ``never`` is taken out of every scope but ``photos`` (whose Media is what it is for)."""
        closed = self.closure(codes)
        types: set[str] = set()
        for code in closed:
            types |= self.scopes[code].types - self.never
        if PHOTOS in closed:
            types |= self.scopes[PHOTOS].types
        return frozenset(types)


def parse_sharing(data: Mapping[str, Any]) -> Sharing:
    """The rules of the YAML document. Raises ConfigError naming the part at fault."""
    system = data.get("system")
    raw = data.get("scopes")
    if not isinstance(system, str) or not isinstance(raw, Mapping) or SUMMARY not in raw:
        raise ConfigError("sharing: 'system' and 'scopes' (with 'summary') are required")
    never = _names(data.get("never"), "never")
    compartment = frozenset(load_compartment())
    scopes: dict[str, ShareScope] = {}
    for code, spec in raw.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("label"), str):
            raise ConfigError(f"sharing: scope {code!r} needs a label")
        coding = spec.get("coding")
        if not isinstance(coding, Mapping) or coding.get("code") != code:
            raise ConfigError(f"sharing: scope {code!r}: its coding must carry code {code!r}")
        if coding.get("system") != system:
            raise ConfigError(f"sharing: scope {code!r}: its coding's system must be {system}")
        types = _names(spec.get("types"), f"scope {code}")
        if spec.get("compartment"):
            types |= compartment
        covers = _names(spec.get("covers"), f"scope {code} covers")
        unknown = covers - set(raw)
        if unknown:
            raise ConfigError(f"sharing: scope {code!r} covers unknown {sorted(unknown)}")
        needs = spec.get("needs_consent")
        scopes[str(code)] = ShareScope(
            code=str(code),
            label=spec["label"],
            coding={k: str(v) for k, v in coding.items()},
            types=types,
            covers=covers,
            needs_consent=str(needs) if needs else None,
        )
    dated = data.get("dated_by") or {}
    if not isinstance(dated, Mapping):
        raise ConfigError("sharing: 'dated_by' must map types to element paths")
    dated_by = {str(t): tuple(_paths(p, t)) for t, p in dated.items()}
    return Sharing(
        system=system,
        scopes=scopes,
        never=never,
        standing=_names(data.get("standing"), "standing"),
        dated_by=dated_by,
        photo_content_types=_names(data.get("photo_content_types"), "photo_content_types"),
        consent_kinds=_names(data.get("consent_kinds"), "consent_kinds"),
    )


def _names(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"sharing: {where} must be a list of names")
    return frozenset(value)


def _paths(value: Any, resource_type: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"sharing: dated_by {resource_type} must be a list of element paths")
    return list(value)


@lru_cache(maxsize=4)
def load_sharing(path: Path | None = None) -> Sharing:
    """Load ``mappings/sharing.yaml`` (or ``path``). Raises ConfigError."""
    return parse_sharing(read_mapping_file(path or SHARING_FILE, "sharing rules"))
