"""Reading an R4 Questionnaire's items: field names, widgets and allowed answers (pure).

hl7.org/fhir/R4/questionnaire.html. Each item becomes a form field named by its linkId
(``linkId[i]`` inside instance ``i`` of a repeating group); the other intake modules build on
these readings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.terminology import MAPPINGS_DIR

Values = dict[str, list[str]]  # form field name → the raw values posted (or pre-filled)
Errors = dict[str, str]  # form field name (the linkId outside repeating groups) → message
ValueSets = Mapping[str, list[dict[str, Any]]]  # answerValueSet canonical → its Codings

ANSWERABLE = ("string", "text", "boolean", "choice", "open-choice", "date", "integer", "decimal")
MAX_INSTANCES = 20  # rows of one repeating group a form may post


@dataclass(frozen=True)
class Option:
    value: str  # what the form posts: the code of a Coding, else the value as text
    label: str
    answer: dict[str, Any]  # the answer[x] it stands for, e.g. {"valueCoding": {...}}


def field_name(link_id: str, index: int | None = None) -> str:
    return link_id if index is None else f"{link_id}[{index}]"


def field_id(link_id: str, index: int | None = None) -> str:
    """The element id: ``q-`` + the linkId with dots as dashes (+ ``-i`` in a repeating group)."""
    base = "q-" + re.sub(r"[^A-Za-z0-9_-]", "-", link_id)
    return base if index is None else f"{base}-{index}"


def canonical(questionnaire: dict[str, Any]) -> str:
    url = questionnaire["url"]
    return f"{url}|{questionnaire['version']}" if questionnaire.get("version") else url


# -- answer options ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def project_value_sets(directory: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """Codings of the project CodeSystems (``mappings/codesystems``), by the CodeSystem's url
    and its ``valueSet`` (the implicit "all codes" value set). Reads files once."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((directory or MAPPINGS_DIR / "codesystems").glob("*.json")):
        system = json.loads(path.read_text(encoding="utf-8"))
        codings = [
            {"system": system["url"], "code": c["code"], "display": c.get("display", c["code"])}
            for c in system.get("concept", [])
        ]
        for url in (system.get("url"), system.get("valueSet")):
            if url:
                found[url] = codings
    return found


def answer_value(answer: dict[str, Any]) -> tuple[str, str]:
    """(form value, label) of an answerOption / QR answer."""
    for key, raw in answer.items():
        if not key.startswith("value"):
            continue
        if key == "valueCoding":
            return str(raw.get("code", "")), str(raw.get("display") or raw.get("code", ""))
        if key == "valueBoolean":
            return ("true" if raw else "false"), ("Yes" if raw else "No")
        return str(raw), str(raw)
    return "", ""


def options(item: dict[str, Any], value_sets: ValueSets) -> list[Option]:
    """The allowed answers of a choice item: its answerOptions, else its answerValueSet."""
    answers = [
        {k: v for k, v in o.items() if k.startswith("value")} for o in item.get("answerOption", [])
    ]
    if not answers and item.get("answerValueSet"):
        url = str(item["answerValueSet"]).split("|")[0]
        answers = [{"valueCoding": dict(c)} for c in value_sets.get(url, [])]
    return [Option(*answer_value(a), answer=a) for a in answers]


def widget_for(item: dict[str, Any]) -> str | None:
    """The form control ``item`` is shown as (see ``Field``), or None when not offered."""
    kind, repeats = item.get("type"), bool(item.get("repeats"))
    if kind == "group":
        return "repeat-group" if repeats else "fieldset"
    if kind in ("string", "text"):
        return "lines" if repeats else ("textarea" if kind == "text" else "text")
    if kind == "open-choice" and not repeats:
        return "open"  # a text input suggesting the options (a datalist)
    if kind in ("choice", "open-choice"):
        return "checkboxes" if repeats else "select"
    if kind == "boolean":
        return "radio"
    if kind in ("date", "integer", "decimal"):
        return kind
    if kind == "display":
        return "display"
    return None  # attachment, quantity, reference…: not offered by this form


# -- repeating groups ----------------------------------------------------------------------


def instance_indices(item: dict[str, Any], names: Mapping[str, Any]) -> list[int]:
    """The instance numbers of a repeating group present among ``names``."""
    wanted = {c["linkId"] for c in _leaves(item.get("item", []))}
    found: set[int] = set()
    for name in names:
        match = re.fullmatch(r"(.+)\[(\d{1,3})\]", name)
        if match and match.group(1) in wanted and int(match.group(2)) < MAX_INSTANCES:
            found.add(int(match.group(2)))
    return sorted(found)


def _leaves(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") == "group":
            out += _leaves(item.get("item", []))
        else:
            out.append(item)
    return out
