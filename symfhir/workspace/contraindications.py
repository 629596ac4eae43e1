"""Contraindication warnings derived from the whole record (pure), by the rules of
``mappings/contraindication-rules.yaml``.

FHIR R4 resources of one client in, warnings out: each names the risk, what in the record
triggered it (a MedicationStatement, Condition, AllergyIntolerance, Observation, or a
contraindication ticked on the intake form) and why it matters. A rule fires once, whatever
number of records trigger it, so an intake tick and the matching medication give one warning.
No clock reads: time windows are measured back from the ``today`` the caller passes.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.fhir.reading import Coding, codings, concept_text, concept_texts, status_code
from symfhir.terminology import MAPPINGS_DIR, Terminology, load_terminology, read_mapping_file

RULES_FILE = "contraindication-rules.yaml"
INTAKE_OBS = "http://symfhir.org/fhir/CodeSystem/intake-observation"
SUPPLEMENT = ("http://symfhir.org/fhir/CodeSystem/medication-kind", "supplement")
INTAKE_TRIGGER = "ticked at intake"

RESOURCE_TYPES = ("MedicationStatement", "Condition", "AllergyIntolerance", "Observation")
CLINICAL_STATUSES = frozenset(
    {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
)
DEFAULT_CLINICAL = frozenset({"active", "recurrence", "relapse"})
# MedicationStatement.status: these mean the client is not taking it now.
MED_ENDED = frozenset({"stopped", "completed"})
MED_NEVER = frozenset({"entered-in-error", "not-taken"})
NOT_A_FACT = frozenset({"entered-in-error", "refuted"})  # verificationStatus
OBS_IGNORED = frozenset({"entered-in-error", "cancelled"})

_RULE_KEYS = frozenset({"id", "label", "risk", "intake", "match"})
_CLAUSE_KEYS = frozenset(
    {"resource", "codes", "words", "values", "within_months", "clinical_status"}
)


@dataclass(frozen=True)
class Clause:
    """One way a rule matches: a resource type and what its concept must say."""

    resource: str
    codes: frozenset[Coding] = frozenset()
    words: tuple[str, ...] = ()
    values: frozenset[Coding] = frozenset()
    within_months: int | None = None
    clinical_status: frozenset[str] = DEFAULT_CLINICAL
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, concepts: Iterable[dict[str, Any] | None]) -> bool:
        """Whether a coding of ``concepts`` is one of ``codes`` or their text has a word."""
        for concept in concepts:
            if codings(concept) & self.codes:
                return True
            texts = concept_texts(concept)
            if self.pattern and any(self.pattern.search(_normal(t)) for t in texts):
                return True
        return False


@dataclass(frozen=True)
class Rule:
    id: str
    label: str
    risk: str
    intake: frozenset[Coding] = frozenset()
    intake_texts: frozenset[str] = frozenset()  # normalised displays of the intake codings
    match: tuple[Clause, ...] = ()


@dataclass(frozen=True)
class Contraindication:
    """One warning: ``rule`` is the rule's id ("" for an intake tick no rule covers)."""

    rule: str
    label: str
    risk: str
    triggers: tuple[str, ...]

    @property
    def source(self) -> str:
        return ", ".join(self.triggers)

    @property
    def text(self) -> str:
        return f"{self.label}: {self.source}" + (f" — {self.risk}" if self.risk else "")


# --- the rules file -------------------------------------------------------------------------


@lru_cache(maxsize=8)
def load_rules(path: Path | None = None) -> tuple[Rule, ...]:
    """Load ``mappings/contraindication-rules.yaml`` (or ``path``) once. Raises ConfigError
    naming the file and the rule when the file is unreadable or a rule is malformed."""
    path = path or MAPPINGS_DIR / RULES_FILE
    return parse_rules(read_mapping_file(path, "contraindication rules"), path.name)


def parse_rules(
    data: dict[str, Any], where: str = RULES_FILE, terminology: Terminology | None = None
) -> tuple[Rule, ...]:
    """The rules of the YAML document ``data`` (``where`` names it in errors). Intake keys
    are checked against ``terminology`` (default: the bundled one). Raises ConfigError."""
    terms = terminology or load_terminology()
    entries = data.get("rules")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: 'rules' must be a non-empty list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(entries, 1):
        name = f"rule {index}"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"].strip():
            name = f"rule {raw['id']!r}"
        rule = _parse_rule(raw, terms, f"{where}: {name}")
        if rule.id in seen:
            raise ConfigError(f"{where}: {name}: duplicate id")
        seen.add(rule.id)
        rules.append(rule)
    return tuple(rules)


def _parse_rule(raw: object, terms: Terminology, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = sorted(set(map(str, raw)) - _RULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    rule_id, label = _text(raw, "id", where), _text(raw, "label", where)
    risk = _text(raw, "risk", where)
    intake: set[Coding] = set()
    intake_texts: set[str] = set()
    for key in _list(raw, "intake", where):
        if not isinstance(key, str) or not terms.has("contraindication", key):
            allowed = ", ".join(sorted(terms.keys("contraindication")))
            raise ConfigError(f"{where}: intake {key!r} is not a contraindication key ({allowed})")
        coding = terms.coding("contraindication", key)
        intake.add((coding["system"], coding["code"]))
        if coding.get("display"):
            intake_texts.add(_normal(coding["display"]))
    clauses = tuple(
        _parse_clause(c, f"{where}: match {i}") for i, c in enumerate(_list(raw, "match", where), 1)
    )
    if not clauses and not intake:
        raise ConfigError(f"{where}: needs 'match' or 'intake'")
    return Rule(rule_id, label, risk, frozenset(intake), frozenset(intake_texts), clauses)


def _parse_clause(raw: object, where: str) -> Clause:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = sorted(set(map(str, raw)) - _CLAUSE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    resource = raw.get("resource")
    if resource not in RESOURCE_TYPES:
        raise ConfigError(f"{where}: resource must be one of {', '.join(RESOURCE_TYPES)}")
    codes = _coding_list(raw, "codes", where)
    values = _coding_list(raw, "values", where)
    words = tuple(_normal(w) for w in _list(raw, "words", where) if _is_word(w, where))
    if resource == "Observation":
        if not codes or not values:
            raise ConfigError(f"{where}: an Observation clause needs 'codes' and 'values'")
        if words:
            raise ConfigError(f"{where}: an Observation clause matches codes, not words")
    elif values:
        raise ConfigError(f"{where}: 'values' is for Observation clauses only")
    elif not codes and not words:
        raise ConfigError(f"{where}: needs 'codes' or 'words'")
    months = raw.get("within_months")
    if months is not None and (
        resource != "MedicationStatement" or type(months) is not int or months < 1
    ):
        raise ConfigError(
            f"{where}: within_months must be a positive whole number of months "
            "on a MedicationStatement clause"
        )
    statuses = DEFAULT_CLINICAL
    if "clinical_status" in raw:
        given = _list(raw, "clinical_status", where)
        if resource not in ("Condition", "AllergyIntolerance") or not given:
            raise ConfigError(f"{where}: clinical_status is for Condition/AllergyIntolerance")
        if not set(given) <= CLINICAL_STATUSES:
            raise ConfigError(
                f"{where}: clinical_status must be among {', '.join(sorted(CLINICAL_STATUSES))}"
            )
        statuses = frozenset(given)
    pattern = None
    if words:
        alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    return Clause(resource, codes, words, values, months, statuses, pattern)


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: '{key}' must be non-empty text")
    return " ".join(value.split())


def _list(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}: '{key}' must be a list")
    return value


def _is_word(word: object, where: str) -> bool:
    if not isinstance(word, str) or not re.search(r"\w", word):
        raise ConfigError(f"{where}: word {word!r} must be text with a letter or digit")
    return True


def _coding_list(raw: dict[str, Any], key: str, where: str) -> frozenset[Coding]:
    out: set[Coding] = set()
    for item in _list(raw, key, where):
        system, bar, code = str(item).rpartition("|")
        if not isinstance(item, str) or not bar or not system or not code:
            raise ConfigError(f"{where}: {key} entry {item!r} must be 'system|code'")
        out.add((system, code))
    return frozenset(out)


# --- deriving the warnings ------------------------------------------------------------------


def contraindications(
    resources: Iterable[dict[str, Any]], today: date, rules: tuple[Rule, ...] | None = None
) -> list[Contraindication]:
    """The warnings of one client's ``resources`` (already limited to that client) on
    ``today``, in the order of the rules, then intake ticks no rule covers (by label).
    Raises ConfigError when the bundled rules are unusable."""
    rules = load_rules() if rules is None else rules
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    found: dict[str, list[str]] = {rule.id: [] for rule in rules}
    for rule in rules:
        for clause in rule.match:
            triggers = found[rule.id]
            if clause.resource == "MedicationStatement":
                triggers += _medications(by_type.get(clause.resource, []), clause, today)
            elif clause.resource == "Observation":
                triggers += _observation(by_type.get(clause.resource, []), clause, rule.label)
            else:
                triggers += _clinical(by_type.get(clause.resource, []), clause)
    unruled: dict[str, list[str]] = {}
    for obs in by_type.get("Observation", []):
        if obs.get("status") in OBS_IGNORED or (INTAKE_OBS, "contraindication") not in codings(
            obs.get("code")
        ):
            continue
        value = obs.get("valueCodeableConcept")
        ticked = codings(value)
        text = _normal(concept_text(value))
        rule = next(
            (r for r in rules if r.intake & ticked or (not ticked and text in r.intake_texts)),
            None,
        )
        if rule is not None:
            found[rule.id].append(INTAKE_TRIGGER)
        elif concept_text(value):
            unruled.setdefault(concept_text(value), []).append(INTAKE_TRIGGER)
    out = [
        Contraindication(rule.id, rule.label, rule.risk, _unique(found[rule.id]))
        for rule in rules
        if found[rule.id]
    ]
    out += [
        Contraindication("", label, "", _unique(triggers))
        for label, triggers in sorted(unruled.items(), key=lambda kv: kv[0].casefold())
    ]
    return out


def _medications(statements: list[dict[str, Any]], clause: Clause, today: date) -> list[str]:
    out = []
    for statement in statements:
        status = str(statement.get("status") or "active")
        medication = statement.get("medicationCodeableConcept")
        reference = {"text": (statement.get("medicationReference") or {}).get("display")}
        if status in MED_NEVER or not clause.matches([medication, reference]):
            continue
        name = concept_text(medication) or str(reference["text"] or "medication")
        kind = "supplement" if SUPPLEMENT in codings(statement.get("category")) else "medication"
        period_end = _last_day(str((statement.get("effectivePeriod") or {}).get("end") or ""))
        if status not in MED_ENDED and (period_end is None or period_end >= today):
            out.append(f"{name} ({kind})")
            continue
        if clause.within_months is None:
            continue
        end = period_end or _last_day(
            str(statement.get("effectiveDateTime") or statement.get("dateAsserted") or "")
        )
        if end is None:
            out.append(f"{name} ({kind}, stopped, end date not recorded)")
        elif end >= months_before(today, clause.within_months):
            out.append(f"{name} ({kind}, stopped {end.isoformat()})")
    return out


def _clinical(resources: list[dict[str, Any]], clause: Clause) -> list[str]:
    """Triggers among Conditions or AllergyIntolerances."""
    kind = "condition" if clause.resource == "Condition" else "allergy"
    out = []
    for resource in resources:
        if status_code(resource, "verificationStatus") in NOT_A_FACT:
            continue
        clinical = status_code(resource, "clinicalStatus") or "active"
        if clinical not in clause.clinical_status or not clause.matches([resource.get("code")]):
            continue
        name = concept_text(resource.get("code"))
        past = "" if clinical in DEFAULT_CLINICAL else f", {clinical}"
        out.append(f"{name} ({kind}{past})")
    return out


def _observation(observations: list[dict[str, Any]], clause: Clause, label: str) -> list[str]:
    """The latest Observation with the clause's code, when its answer is one that fires."""
    latest: tuple[str, dict[str, Any]] | None = None
    for obs in observations:
        if obs.get("status") in OBS_IGNORED or not codings(obs.get("code")) & clause.codes:
            continue
        when = str(
            obs.get("effectiveDateTime")
            or (obs.get("effectivePeriod") or {}).get("start")
            or obs.get("issued")
            or ""
        )
        if latest is None or when > latest[0]:
            latest = (when, obs)
    if latest is None:
        return []
    value = latest[1].get("valueCodeableConcept")
    if not codings(value) & clause.values:
        return []
    said = next(iter(concept_texts(value)), "") or label
    return [f"{said} (observation{', ' + latest[0][:10] if latest[0] else ''})"]


def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (the month's last day if shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _last_day(text: str) -> date | None:
    """The latest day a FHIR date/dateTime can mean (``2026-05`` → 2026-05-31), or None."""
    match = re.match(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", text.strip())
    if not match:
        return None
    year, month, day = match.group(1, 2, 3)
    try:
        if day:
            return date(int(year), int(month), int(day))
        if month:
            return date(int(year), int(month), calendar.monthrange(int(year), int(month))[1])
        return date(int(year), 12, 31)
    except ValueError:
        return None


def _normal(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").casefold().split())


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
