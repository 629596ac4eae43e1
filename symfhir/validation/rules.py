"""Project rules for the transaction Bundles symfhir writes (beyond what FHIR itself requires).

hl7.org/fhir/R4/http.html#transaction: entries are resolved by ``urn:uuid`` full URLs,
and creates are conditional (``ifNoneExist``) so a replay never duplicates anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from fhir.resources.R4B import get_fhir_model_class

from symfhir.cardnumbers import has_card_number
from symfhir.validation.structural import Problem

# RFC 4122 text form, lowercase as FHIR asks. symfhir's own full URLs are name-based
# (version 5) so re-runs produce the same Bundle; any version is accepted.
_URN_UUID = re.compile(
    r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)
_URN_UUID_LINES = re.compile(rf"(?:{_URN_UUID.pattern}\n)*{_URN_UUID.pattern}")
_CONDITION = re.compile(r"(identifier|_tag)=([^|&\s]+)\|([^&\s]+)")
_WITH_STORED_FILES = frozenset({"Media", "DocumentReference"})
_WITH_RESOURCE_RULES = _WITH_STORED_FILES | {"Consent"}
# Not free text: base64 payloads, identifiers, codes, phone numbers, hashes. Digit runs in
# them (a hashed identifier, a date-stamped id) pass the Luhn check one time in ten.
_BINARY_KEYS = frozenset(
    {"data", "value", "system", "code", "id", "hash", "version", "ifNoneExist", "fullUrl"}
)
_MIN_CARD = 13  # shortest card number; "urn:uuid:" references are longer anyway
_DIGITS = re.compile(r"\d(?:[ -]?\d){12}")  # cheap pre-check before the Luhn scan


_ANY_URN_UUID = re.compile(r"urn:uuid:[0-9a-fA-F-]{36}")
_ANY_URN_UUID_BYTES = re.compile(rb"urn:uuid:[0-9a-fA-F-]{36}")


def bundle_rules(bundle: dict[str, Any], serialized: str | bytes | None = None) -> list[Problem]:
    """Every way ``bundle`` breaks symfhir's transaction rules; ``[]`` when it keeps them.

    With ``serialized`` (the Bundle's own JSON, text or UTF-8, as symfhir map writes it), the walk
    over every string is replaced by one regular-expression pass over the text: every
    ``urn:uuid`` in it must be a full URL of the Bundle. The card-number scan is then
    left to the record model, which checks every free-text field on input. On any
    finding the full walk runs, so the problems keep their exact paths.
    """
    problems: list[Problem] = []
    full_urls = _entry_rules(bundle, problems)
    if serialized is not None and not problems and _all_resolve(serialized, full_urls):
        return []
    return _full_walk(bundle, problems)


def _all_resolve(serialized: str | bytes, full_urls: set[str]) -> bool:
    """Whether every ``urn:uuid`` in the JSON is one of the Bundle's full URLs."""
    if isinstance(serialized, bytes):
        found = {u.decode("ascii") for u in set(_ANY_URN_UUID_BYTES.findall(serialized))}
        return full_urls.issuperset(found)
    return full_urls.issuperset(_ANY_URN_UUID.findall(serialized))


def _entry_rules(bundle: dict[str, Any], problems: list[Problem]) -> set[str]:
    """Add the rules on the Bundle and each entry's request and resource (no string walk).

    Runs on every Bundle ``symfhir map`` writes, so the common case (a rule kept) builds
    no path strings; each check that fails adds its problem with the exact path.
    """
    if bundle.get("type") != "transaction":
        problems.append(Problem("Bundle.type", "must be transaction"))
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        problems.append(Problem("Bundle.entry", "must be a list"))
        return set()
    full_urls = _full_urls(entries, problems)
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            problems.append(
                Problem(f"Bundle.entry[{index}].resource", "every entry needs a resource")
            )
            continue
        _request_rules(entry, resource, index, problems)
        resource_type = resource.get("resourceType")
        if resource_type in _WITH_RESOURCE_RULES:
            _resource_rules(resource, f"Bundle.entry[{index}].resource", problems)
    return full_urls


def _full_walk(bundle: dict[str, Any], problems: list[Problem]) -> list[Problem]:
    """Add the per-string problems: unresolved urn:uuid references, card numbers."""
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        return problems
    full_urls = _full_urls(entries, [])
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            _scan(entry["resource"], [f"Bundle.entry[{index}].resource"], full_urls, problems)
    rest = {key: value for key, value in bundle.items() if key != "entry"}
    _scan(rest, ["Bundle"], full_urls, problems)
    return problems


def _full_urls(entries: list[Any], problems: list[Problem]) -> set[str]:
    # The common case in one regular-expression call: every fullUrl a urn:uuid, none twice.
    try:
        urls = [entry["fullUrl"] for entry in entries]
        joined = "\n".join(urls)
    except (KeyError, TypeError):
        pass  # not every entry is an object with a text fullUrl: the loop says which
    else:
        unique = set(urls)
        if (
            len(unique) == len(urls)
            and joined.count("\n") == len(urls) - 1
            and _URN_UUID_LINES.fullmatch(joined)
        ):
            return unique
    seen: set[str] = set()
    fullmatch = _URN_UUID.fullmatch
    for index, entry in enumerate(entries):
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if not isinstance(full_url, str) or not fullmatch(full_url):
            path = f"Bundle.entry[{index}].fullUrl"
            problems.append(Problem(path, "must be urn:uuid: followed by a lowercase UUID"))
        elif full_url in seen:
            problems.append(
                Problem(f"Bundle.entry[{index}].fullUrl", "duplicate fullUrl in the Bundle")
            )
        else:
            seen.add(full_url)
    return seen


def _request_rules(
    entry: dict[str, Any], resource: dict[str, Any], index: int, problems: list[Problem]
) -> None:
    # Runs for every entry symfhir map writes: paths are only built for a problem.
    request = entry.get("request")
    if not isinstance(request, dict):
        problems.append(Problem(f"Bundle.entry[{index}].request", "every entry needs a request"))
        return
    resource_type = resource.get("resourceType")
    if request.get("method") != "POST":
        problems.append(Problem(f"Bundle.entry[{index}].request.method", "must be POST"))
    if request.get("url") != resource_type:
        message = "must be the resource's resourceType"
        problems.append(Problem(f"Bundle.entry[{index}].request.url", message))
    condition = request.get("ifNoneExist")
    match = _CONDITION.fullmatch(condition) if isinstance(condition, str) else None
    by_identifier = _has_identifier(resource_type)
    if match is None:
        wanted = "identifier=system|value" if by_identifier else "_tag=system|code"
        message = f"needs a conditional create: {wanted}"
    else:
        message = _condition_problem(match, by_identifier, resource)
    if message:
        problems.append(Problem(f"Bundle.entry[{index}].request.ifNoneExist", message))


def _condition_problem(match: re.Match[str], by_identifier: bool, resource: dict[str, Any]) -> str:
    """What is wrong with a well-formed ``ifNoneExist`` for ``resource``; "" when nothing."""
    param, system, value = match.groups()
    if "%" in system:
        system = unquote(system)
    if "%" in value:
        value = unquote(value)
    if by_identifier and param != "identifier":
        return "must search by identifier"
    if param == "identifier":
        identifiers = resource.get("identifier")
        # most types repeat identifier; a few (QuestionnaireResponse) allow only one
        if isinstance(identifiers, dict):
            identifiers = [identifiers]
        if not _has_pair(identifiers, "value", system, value):
            return "identifier is not one of the resource's identifiers"
    elif not _has_pair(_get(resource, "meta", "tag"), "code", system, value):
        return "_tag is not one of the resource's meta.tag"
    return ""


def _has_pair(items: Any, key: str, system: str, value: str) -> bool:
    """Whether a dict in the list ``items`` has ``system`` and ``key`` equal to the pair."""
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("system") == system and item.get(key) == value:
                return True
    return False


def _resource_rules(resource: dict[str, Any], path: str, problems: list[Problem]) -> None:
    resource_type = resource.get("resourceType")
    if resource_type == "Consent" and not (resource.get("policy") or resource.get("policyRule")):
        problems.append(Problem(f"{path}.policy", "a Consent needs a policy or policyRule"))
    if resource_type in _WITH_STORED_FILES:
        for where, attachment in _attachments(resource, path):
            if attachment.get("url") is not None:
                for key in ("contentType", "size", "hash"):
                    if attachment.get(key) in (None, ""):
                        problems.append(Problem(f"{where}.{key}", "required when url is set"))


def _attachments(resource: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if resource["resourceType"] == "Media":
        if isinstance(resource.get("content"), dict):
            yield f"{path}.content", resource["content"]
        return
    for index, content in enumerate(_dicts(resource.get("content"))):
        if isinstance(content.get("attachment"), dict):
            yield f"{path}.content[{index}].attachment", content["attachment"]


@lru_cache(maxsize=256)
def _has_identifier(resource_type: object) -> bool:
    if not isinstance(resource_type, str):
        return True
    try:
        return "identifier" in get_fhir_model_class(resource_type).model_fields
    except ValueError:
        return True


def _scan(value: Any, trail: list[Any], full_urls: set[str], problems: list[Problem]) -> None:
    """Check every string under ``value``: urn:uuid references resolve, no card numbers.

    ``trail`` holds the path parts so far; a path string is only built for a problem,
    as this runs on every string of every Bundle.
    """
    items = value.items() if type(value) is dict else enumerate(value)
    for key, item in items:
        kind = type(item)
        if kind is str:
            if len(item) < _MIN_CARD or key in _BINARY_KEYS:
                continue
            if item.startswith("urn:uuid:") and key in ("reference", "url"):
                if item not in full_urls:
                    problems.append(Problem(_path([*trail, key]), "urn:uuid reference not found"))
            elif _DIGITS.search(item) and has_card_number(item):
                problems.append(Problem(_path([*trail, key]), "contains a payment card number"))
        elif kind is dict or kind is list:
            trail.append(key)
            _scan(item, trail, full_urls, problems)
            trail.pop()


def _path(parts: list[Any]) -> str:
    return parts[0] + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts[1:])


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value
