"""The consent kinds of ``mappings/consent-kinds.yaml`` and their Consent templates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

PHOTO_USES = ("clinical", "website", "social")
TEMPLATE_KEYS = ("scope", "category", "policy_rule", "provision")


@dataclass(frozen=True)
class ConsentKind:
    """One kind of consent: its label, the policy document, and its Consent template."""

    key: str
    label: str
    document: str
    template: dict[str, Any]
    photo_use: str | None
    #: The version a new consent of this kind is given under; None: the spa's policy version.
    version: str | None = None
    #: Earlier versions a consent may still be recorded under (a paper form signed before).
    earlier_versions: tuple[str, ...] = ()

    def known_versions(self, default: str) -> tuple[str, ...]:
        """The versions a capture accepts: the current one (``default`` when the kind has
        none of its own) first, then the earlier ones."""
        return (self.version or default, *self.earlier_versions)


@dataclass(frozen=True)
class ConsentKinds:
    policy_uri: str
    kinds: dict[str, ConsentKind]

    def policy_uri_for(self, key: str, version: str) -> str:
        return self.policy_uri.format(document=self.kinds[key].document, version=version)


def parse_consent_kinds(data: dict[str, Any]) -> ConsentKinds:
    """Build ConsentKinds from the YAML document. Raises ConfigError on bad shape."""
    try:
        policy_uri = str(data["policy_uri"])
        raw_kinds = data["kinds"]
    except (KeyError, TypeError):
        raise ConfigError("consent kinds need 'policy_uri' and 'kinds'") from None
    kinds: dict[str, ConsentKind] = {}
    for key, spec in raw_kinds.items():
        if not isinstance(spec, dict) or "scope" not in spec or "provision" not in spec:
            raise ConfigError(f"consent kind {key!r} needs at least scope and provision")
        if "required_for_minor_guardian" in spec:
            # A per-kind switch could only weaken policy §9: a parent or guardian signs every
            # consent of a minor, whatever the kind.
            raise ConfigError(
                f"consent kind {key!r}: required_for_minor_guardian is no longer read (a parent "
                "or guardian signs every consent of a minor); remove it"
            )
        version = spec.get("version")
        earlier = spec.get("earlier_versions") or []
        if not isinstance(earlier, list):
            raise ConfigError(f"consent kind {key!r}: earlier_versions must be a list")
        photo_use = spec.get("photo_use")
        if photo_use not in (None, *PHOTO_USES):
            raise ConfigError(f"consent kind {key!r}: photo_use must be one of {PHOTO_USES}")
        kinds[str(key)] = ConsentKind(
            key=str(key),
            label=str(spec.get("label", key)),
            document=str(spec.get("document", key)),
            template={k: spec[k] for k in TEMPLATE_KEYS if k in spec},
            photo_use=photo_use,
            version=str(version) if version is not None else None,
            earlier_versions=tuple(str(v) for v in earlier),
        )
    return ConsentKinds(policy_uri, kinds)


@lru_cache(maxsize=8)
def load_consent_kinds(path: Path | None = None) -> ConsentKinds:
    """Load ``mappings/consent-kinds.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "consent-kinds.yaml"
    return parse_consent_kinds(read_mapping_file(path, "consent kinds"))
