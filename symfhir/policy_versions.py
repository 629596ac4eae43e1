"""Changes to the privacy policy (policy §13): the versions of ``privacy_policy_history`` in
``mappings/spa.yaml``, which of them were significant, and whether a consent signed under an
older version needs the client's consent again (pure, but for reading the file).

A consent needs re-consent when it is given (active) and was signed under a version older
than the latest significant change: by its place in the history when its version is listed,
else (no version recorded, or one the history does not know) by its date against the
change's effective date. Kinds whose policy document carries a version of its own
(``version`` in consent-kinds.yaml) are not governed by the privacy policy's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.terminology import MAPPINGS_DIR
from symfhir.yamlfile import YAMLError, parse_yaml


@dataclass(frozen=True)
class PolicyVersion:
    """One version of the privacy policy: its version string (as Consent.policy names it),
    the day it took effect, whether it was a significant change, and a PHI-free summary."""

    version: str
    effective: date
    significant: bool
    summary: str


@dataclass(frozen=True)
class PolicyHistory:
    """Every version, oldest first; the last one is the policy in force."""

    versions: tuple[PolicyVersion, ...]

    @property
    def current(self) -> PolicyVersion | None:
        return self.versions[-1] if self.versions else None

    @property
    def latest_significant(self) -> PolicyVersion | None:
        """The newest significant change, or None when there has been none."""
        return next((v for v in reversed(self.versions) if v.significant), None)

    def reconsent_needed(self, policy_version: str, signed: date | None) -> bool:
        """Whether a consent signed under ``policy_version`` on ``signed`` (the spa-local day;
        None when unknown) predates the latest significant change."""
        change = self.latest_significant
        if change is None:
            return False
        order = [v.version for v in self.versions]
        if policy_version in order:
            return order.index(policy_version) < order.index(change.version)
        # A version the history does not list: only its date can tell; none: ask again.
        return signed is None or signed < change.effective


def parse_policy_history(data: Any, in_force: str) -> PolicyHistory:
    """The history of a spa.yaml document; ``in_force`` is its ``privacy_policy_version``.
    Without ``privacy_policy_history`` the version in force is the only one, not a change.

    Raises ConfigError for a malformed entry, a repeated version, effective dates out of
    order, or a last entry that is not the version in force."""
    raw = data.get("privacy_policy_history") if isinstance(data, dict) else None
    if raw is None:
        if not in_force:
            return PolicyHistory(())
        return PolicyHistory((PolicyVersion(in_force, date.min, False, ""),))
    if not isinstance(raw, list) or not raw:
        raise ConfigError("privacy_policy_history must be a non-empty list")
    versions: list[PolicyVersion] = []
    for index, entry in enumerate(raw):
        where = f"privacy_policy_history[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping")
        try:
            version = str(entry["version"])
            effective = entry["effective"]
            if isinstance(effective, str):
                effective = date.fromisoformat(effective)
            significant = entry.get("significant", False)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{where} needs version and effective (YYYY-MM-DD): {exc}") from None
        if not isinstance(effective, date) or not isinstance(significant, bool):
            raise ConfigError(f"{where}: effective is a date and significant true or false")
        if any(v.version == version for v in versions):
            raise ConfigError(f"{where}: version {version!r} is listed twice")
        if versions and effective <= versions[-1].effective:
            raise ConfigError(f"{where}: versions are listed oldest first")
        versions.append(
            PolicyVersion(version, effective, significant, str(entry.get("summary", "")))
        )
    if versions[-1].version != in_force:
        raise ConfigError(
            f"the last privacy_policy_history entry must be privacy_policy_version ({in_force!r})"
        )
    return PolicyHistory(tuple(versions))


@lru_cache(maxsize=8)
def load_policy_history(path: Path | None = None) -> PolicyHistory:
    """The history of ``mappings/spa.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "spa.yaml"
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise ConfigError(f"cannot read spa settings {path.name}: {exc}") from exc
    in_force = str(data.get("privacy_policy_version", "")) if isinstance(data, dict) else ""
    return parse_policy_history(data, in_force)
