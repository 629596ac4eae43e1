"""Code tables from ``mappings/terminology.yaml``: our short keys to FHIR Codings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.yamlfile import YAMLError, parse_yaml

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"


@dataclass(frozen=True)
class Terminology:
    """Value sets keyed by name; each maps a key (``face``) to a Coding dict."""

    valuesets: dict[str, dict[str, dict[str, str]]]

    def keys(self, valueset: str) -> frozenset[str]:
        """The keys a value set allows. Raises ConfigError for an unknown value set."""
        return frozenset(self._valueset(valueset))

    def coding(self, valueset: str, key: str) -> dict[str, str]:
        """The Coding for ``key``. Raises KeyError when the key is not in the value set."""
        return dict(self._valueset(valueset)[key])

    def has(self, valueset: str, key: str) -> bool:
        return key in self._valueset(valueset)

    def _valueset(self, name: str) -> dict[str, dict[str, str]]:
        try:
            return self.valuesets[name]
        except KeyError:
            raise ConfigError(f"terminology has no value set {name!r}") from None


def parse_terminology(data: dict[str, Any]) -> Terminology:
    """Build a Terminology from the YAML document. Raises ConfigError on bad shape."""
    valuesets: dict[str, dict[str, dict[str, str]]] = {}
    for name, entries in data.items():
        if name.startswith("_"):
            continue
        if not isinstance(entries, dict):
            raise ConfigError(f"terminology value set {name!r} must be a mapping")
        codes: dict[str, dict[str, str]] = {}
        for key, coding in entries.items():
            if str(key).startswith("_"):
                continue
            if not isinstance(coding, dict) or not {"system", "code"} <= coding.keys():
                raise ConfigError(f"terminology {name}.{key} needs system and code")
            codes[str(key)] = {
                k: str(coding[k]) for k in ("system", "code", "display") if k in coding
            }
        valuesets[name] = codes
    return Terminology(valuesets)


def read_mapping_file(path: Path, what: str) -> dict[str, Any]:
    """The YAML mapping at ``path`` (a file of ``mappings/``). Raises ConfigError."""
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise ConfigError(f"cannot read {what} {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path.name} must be a YAML mapping")
    return data


@lru_cache(maxsize=8)
def load_terminology(path: Path | None = None) -> Terminology:
    """Load ``mappings/terminology.yaml`` (or ``path``). Raises ConfigError."""
    return parse_terminology(
        read_mapping_file(path or MAPPINGS_DIR / "terminology.yaml", "terminology")
    )
