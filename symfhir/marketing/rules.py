"""The marketing rules of ``mappings/marketing.yaml``: channels, photo uses, unsubscribe links,
SMS opt-out wording and the CCPA no-sale answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import ConfigError
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file
from symfhir.workspace.photos.consents import USES

TELECOM_SYSTEMS = ("email", "phone")


@dataclass(frozen=True)
class Channel:
    """A marketing channel: the consent kind that allows it and the Patient.telecom system
    its contact is read from."""

    key: str
    consent_kind: str
    telecom: str


@dataclass(frozen=True)
class PhotoUse:
    """A marketing use of photos: the consent kind allowing it and the photo use key of
    ``symfhir.workspace.photos.consents.USES``."""

    key: str
    consent_kind: str
    use: str


@dataclass(frozen=True)
class SmsWording:
    keywords: frozenset[str]
    politeness: frozenset[str]
    phrases: tuple[re.Pattern[str], ...]
    negations: tuple[str, ...]
    confirmation: str


@dataclass(frozen=True)
class MarketingRules:
    channels: dict[str, Channel]
    photo_uses: dict[str, PhotoUse]
    unsubscribe_max_age_days: int
    unsubscribe_mailto: str | None
    sms: SmsWording
    ccpa_no_sale: str

    def channel(self, key: str) -> Channel:
        """The channel ``key``; ConfigError for one not listed (deny by default)."""
        try:
            return self.channels[key]
        except KeyError:
            raise ConfigError(f"unknown marketing channel {key!r}") from None

    def photo_use(self, key: str) -> PhotoUse:
        """The photo use ``key``; ConfigError for one not listed (deny by default)."""
        try:
            return self.photo_uses[key]
        except KeyError:
            raise ConfigError(f"unknown marketing photo use {key!r}") from None


def _words(values: Any, what: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"marketing rules: {what} must be a list of words")
    return [" ".join(v.casefold().split()) for v in values]


def parse_marketing_rules(data: dict[str, Any]) -> MarketingRules:
    """Build the rules from the YAML document; ConfigError for a bad shape, a consent kind
    that ``consent-kinds.yaml`` lacks or a photo use that the photo consents do not know."""
    kinds = load_consent_kinds().kinds
    uses = {use.key for use in USES}
    try:
        channels = {
            str(key): Channel(str(key), str(spec["consent_kind"]), str(spec["telecom"]))
            for key, spec in data["channels"].items()
        }
        photo_uses = {
            str(key): PhotoUse(str(key), str(spec["consent_kind"]), str(spec["use"]))
            for key, spec in data["photo_uses"].items()
        }
        unsubscribe = data["unsubscribe"]
        sms = data["sms"]
        phrases = tuple(re.compile(str(p)) for p in sms["phrases"])
        wording = SmsWording(
            keywords=frozenset(_words(sms["keywords"], "sms.keywords")),
            politeness=frozenset(_words(sms["politeness"], "sms.politeness")),
            phrases=phrases,
            negations=tuple(_words(sms["negations"], "sms.negations")),
            confirmation=str(sms["confirmation"]).strip(),
        )
        rules = MarketingRules(
            channels=channels,
            photo_uses=photo_uses,
            unsubscribe_max_age_days=int(unsubscribe["max_age_days"]),
            unsubscribe_mailto=str(unsubscribe["mailto"]) if unsubscribe.get("mailto") else None,
            sms=wording,
            ccpa_no_sale=" ".join(str(data["ccpa_no_sale"]).split()),
        )
    except (KeyError, TypeError, AttributeError, ValueError, re.error) as exc:
        raise ConfigError(f"marketing rules: bad shape ({type(exc).__name__}: {exc})") from None
    for channel in channels.values():
        if channel.consent_kind not in kinds or channel.telecom not in TELECOM_SYSTEMS:
            raise ConfigError(f"marketing channel {channel.key!r}: unknown kind or telecom")
    for use in photo_uses.values():
        if use.consent_kind not in kinds or use.use not in uses:
            raise ConfigError(f"marketing photo use {use.key!r}: unknown kind or use")
    if rules.unsubscribe_max_age_days < 30:
        # CAN-SPAM: an opt-out mechanism works for at least 30 days after sending.
        raise ConfigError("marketing rules: unsubscribe.max_age_days must be at least 30")
    return rules


@lru_cache(maxsize=4)
def load_marketing_rules(path: Path | None = None) -> MarketingRules:
    """Load ``mappings/marketing.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "marketing.yaml"
    return parse_marketing_rules(read_mapping_file(path, "marketing rules"))
