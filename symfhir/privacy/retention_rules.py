"""The retention rules of ``mappings/retention.yaml`` (documented in mappings/README.md), parsed
and checked: which rule keeps which resources, for how long, and what a deletion may change in
a resource it keeps. ``symfhir.privacy.retention`` applies them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

RETENTION_FILE = MAPPINGS_DIR / "retention.yaml"


@dataclass(frozen=True)
class Keep:
    """How long a rule keeps what it matches: ``years`` after the last treatment, ``forever``,
    or neither (may go now)."""

    years: int | None = None
    forever: bool = False


@dataclass(frozen=True)
class Rule:
    """One named rule: how long it keeps, and the conditions per resource type."""

    name: str
    keep: Keep
    types: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class RetentionPolicy:
    """The parsed ``retention.yaml``."""

    rules: tuple[Rule, ...]
    last_treatment: Mapping[str, tuple[str, ...]]
    clinical_dates: Mapping[str, tuple[str, ...]]
    photo_uses: Mapping[str, frozenset[str]]
    unlink: Mapping[str, frozenset[str]]
    minimize: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    strip: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def parse_retention(data: Any) -> RetentionPolicy:
    """The policy of the YAML document. Raises ConfigError naming what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), dict):
        raise ConfigError("retention: a 'rules' table is required")
    rules = []
    for name, spec in data["rules"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("types"), dict):
            raise ConfigError(f"retention: rule {name} needs a 'types' table")
        keep = spec.get("keep") or {}
        if keep.get("as") == "followed":
            if not all((c or {}).get("follows") for c in spec["types"].values()):
                raise ConfigError(f"retention: rule {name}: keep as followed needs follows")
            parsed = Keep()
        elif keep.get("forever"):
            parsed = Keep(forever=True)
        elif keep.get("none"):
            parsed = Keep()
        elif isinstance(keep.get("years"), int) and keep["years"] >= 0:
            if keep.get("after") != "last-treatment":
                raise ConfigError(f"retention: rule {name}: 'after' must be last-treatment")
            parsed = Keep(years=keep["years"])
        else:
            raise ConfigError(
                f"retention: rule {name}: keep needs years, forever, none or as: followed"
            )
        types = {str(t): (c or {}) for t, c in spec["types"].items()}
        for type_name, condition in types.items():
            unknown = set(condition) - {"consent_kind", "photo_use", "follows"}
            if not isinstance(condition, dict) or unknown:
                raise ConfigError(f"retention: rule {name}: {type_name}: unknown condition")
        rules.append(Rule(str(name), parsed, types))
    basis = data.get("years_basis") or {}

    def paths(table: Any) -> dict[str, tuple[str, ...]]:
        return {str(t): tuple(str(p) for p in v) for t, v in (table or {}).items()}

    return RetentionPolicy(
        rules=tuple(rules),
        last_treatment=paths(basis.get("last_treatment")),
        clinical_dates=paths(basis.get("clinical_dates")),
        photo_uses={str(u): frozenset(k) for u, k in (data.get("photo_uses") or {}).items()},
        unlink={str(t): frozenset(e) for t, e in (data.get("unlink") or {}).items()},
        minimize=paths(data.get("minimize")),
        strip=paths(data.get("strip")),
    )


@lru_cache(maxsize=4)
def load_retention(path: Path | None = None) -> RetentionPolicy:
    """Load ``mappings/retention.yaml`` (or ``path``). Raises ConfigError."""
    return parse_retention(read_mapping_file(path or RETENTION_FILE, "retention rules"))
