"""The intake form to render: Questionnaire items as form fields showing values and errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from symfhir.workspace.intake.questionnaire import (
    MAX_INSTANCES,
    Errors,
    Option,
    Values,
    ValueSets,
    field_id,
    field_name,
    instance_indices,
    options,
    project_value_sets,
    widget_for,
)

EXTRA_ROWS = 1  # empty rows offered after the answered ones of a repeating group


@dataclass
class Field:
    """One rendered item. ``widget``: fieldset, repeat-group, text, textarea, lines, radio
    (yes/no), select, open (text with suggestions), checkboxes, date, integer, decimal,
    display."""

    link_id: str
    name: str
    html_id: str
    label: str
    widget: str
    required: bool = False
    options: list[Option] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    error: str | None = None
    children: list[Field] = field(default_factory=list)
    instances: list[list[Field]] = field(default_factory=list)

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def partial_date(self) -> bool:
        """A date known only to the year or month: shown as text (a date input would drop it)."""
        return self.widget == "date" and 0 < len(self.value) < 10

    @property
    def error_id(self) -> str:
        return "err-" + self.html_id.removeprefix("q-")


def build_form(
    questionnaire: dict[str, Any],
    values: Values,
    errors: Errors | None = None,
    value_sets: ValueSets | None = None,
) -> list[Field]:
    """The fields to render, showing ``values`` and ``errors``."""
    sets = project_value_sets() if value_sets is None else value_sets
    return _fields(questionnaire.get("item", []), values, errors or {}, None, sets)


def _fields(
    items: list[dict[str, Any]],
    values: Values,
    errors: Errors,
    index: int | None,
    sets: ValueSets,
) -> list[Field]:
    out: list[Field] = []
    for item in items:
        widget = widget_for(item)
        if widget is None:
            continue
        link_id = item["linkId"]
        node = Field(
            link_id=link_id,
            name=field_name(link_id, index),
            html_id=field_id(link_id, index),
            label=str(item.get("text") or link_id),
            widget=widget,
            required=bool(item.get("required")) and widget not in ("fieldset", "repeat-group"),
        )
        if widget == "fieldset":
            node.children = _fields(item.get("item", []), values, errors, index, sets)
        elif widget == "repeat-group":
            present = [i for i in instance_indices(item, values) if i < MAX_INSTANCES]
            present += [i for i in instance_indices(item, errors) if i not in present]
            count = min(MAX_INSTANCES, max(present, default=-1) + 1 + EXTRA_ROWS)
            node.instances = [
                _fields(item.get("item", []), values, errors, i, sets) for i in range(count)
            ]
        elif widget != "display":
            node.options = options(item, sets)
            node.values = list(values.get(node.name, []))
            node.error = errors.get(node.name)
        out.append(node)
    return out
