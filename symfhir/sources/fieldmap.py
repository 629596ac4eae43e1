"""Source-format maps (``mappings/sources/*.yaml``): export columns to record fields.

A map is data; this module only interprets it. See ``mappings/README.md`` for
the format. Turning one flat row into the nested dict the record model takes is
pure: files named in cells are returned as paths for the edge to load.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError, RecordError
from symfhir.terminology import MAPPINGS_DIR
from symfhir.yamlfile import YAMLError, parse_yaml

SOURCES_DIR = MAPPINGS_DIR / "sources"
_LIST_ITEM = re.compile(r"(.+)\[\d+\]")
FIELD_TYPES = ("string", "date", "datetime", "list", "json", "file")


@dataclass(frozen=True)
class FieldSpec:
    """How one record field is read from one column."""

    path: str
    column: str
    type: str = "string"
    values: dict[str, str] = field(default_factory=dict)
    parts: tuple[str, ...] = ()
    format: str | None = None


@dataclass(frozen=True)
class FieldMap:
    name: str
    description: str
    encoding: str
    list_separator: str
    part_separator: str
    date_format: str
    datetime_format: str
    fields: tuple[FieldSpec, ...]

    def column_of(self, path: str) -> str | None:
        """The source column behind a record path (``client.birth_date``)."""
        for spec in self.fields:
            if spec.path == path or _LIST_ITEM.sub(r"\1", spec.path) == path:
                return spec.column
        return None

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(spec.column for spec in self.fields))


def _spec(path: str, raw: Any, kind: str | None = None) -> FieldSpec:
    if isinstance(raw, str):
        raw = {"column": raw}
    if not isinstance(raw, dict) or "column" not in raw:
        raise ConfigError(f"field map entry {path!r} needs a column")
    column = str(raw["column"])
    if kind is not None:
        column = column.format(kind=kind)
    ftype = raw.get("type", "string")
    if ftype not in FIELD_TYPES:
        raise ConfigError(f"field map entry {path!r}: type must be one of {FIELD_TYPES}")
    values = {str(k).strip().lower(): str(v) for k, v in (raw.get("values") or {}).items()}
    return FieldSpec(
        path=path,
        column=column,
        type=ftype,
        values=values,
        parts=tuple(raw.get("parts") or ()),
        format=raw.get("format"),
    )


def parse_field_map(data: dict[str, Any], consent_kind_keys: list[str]) -> FieldMap:
    """Build a FieldMap from its YAML document. Raises ConfigError on a bad map."""
    if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
        raise ConfigError("a field map needs a 'fields' mapping")
    specs = [_spec(str(path), raw) for path, raw in data["fields"].items()]
    consents = data.get("consents")
    if consents:
        kinds = consents.get("kinds", "all")
        kinds = consent_kind_keys if kinds == "all" else list(kinds)
        for kind in kinds:
            for attr, raw in consents.items():
                if attr == "kinds":
                    continue
                specs.append(_spec(f"consents.{kind}.{attr}", raw, kind))
    paths = [s.path for s in specs]
    dupes = {p for p in paths if paths.count(p) > 1}
    if dupes:
        raise ConfigError(f"field map fills these fields twice: {sorted(dupes)}")
    return FieldMap(
        name=str(data.get("name", "custom")),
        description=str(data.get("description", "")),
        encoding=str(data.get("encoding", "utf-8")),
        list_separator=str(data.get("list_separator", ";")),
        part_separator=str(data.get("part_separator", "|")),
        date_format=str(data.get("date_format", "iso")),
        datetime_format=str(data.get("datetime_format", "iso")),
        fields=tuple(specs),
    )


@lru_cache(maxsize=16)
def load_field_map(name_or_path: str, consent_kind_keys: tuple[str, ...]) -> FieldMap:
    """Load a bundled map by name (``default``) or a map file by path. Raises ConfigError."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SOURCES_DIR / f"{name_or_path}.yaml"
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in SOURCES_DIR.glob("*.yaml")))
        raise ConfigError(f"no mapping {name_or_path!r} (bundled: {known})") from None
    except (OSError, YAMLError) as exc:
        raise ConfigError(f"cannot read mapping {path.name}: {exc}") from exc
    return parse_field_map(data, list(consent_kind_keys))


def _parse_date(text: str, fmt: str, *, with_time: bool) -> str:
    if fmt == "iso":
        value = datetime.fromisoformat(text)
        if not with_time and len(text) <= 10:
            return value.date().isoformat()
        return value.isoformat()
    value = datetime.strptime(text, fmt)
    if with_time:
        return value.isoformat()
    return value.date().isoformat()


def _translate(spec: FieldSpec, text: str) -> str:
    if spec.values:
        return spec.values.get(text.strip().lower(), text)
    return text


def _cell(spec: FieldSpec, fmap: FieldMap, text: str, record: str) -> Any:
    if spec.type == "string" or spec.type == "file":
        return _translate(spec, text)
    if spec.type in ("date", "datetime"):
        fmt = spec.format or (fmap.date_format if spec.type == "date" else fmap.datetime_format)
        try:
            return _parse_date(text.strip(), fmt, with_time=spec.type == "datetime")
        except ValueError:
            shown = "ISO 8601" if fmt == "iso" else fmt
            raise RecordError(record, spec.column, f"not a valid date ({shown})") from None
    if spec.type == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(record, spec.column, f"not valid JSON ({exc.msg})") from None
    items = [item.strip() for item in text.split(fmap.list_separator)]
    items = [item for item in items if item]
    if not spec.parts:
        return [_translate(spec, item) for item in items]
    out = []
    for item in items:
        parts = [p.strip() for p in item.split(fmap.part_separator)]
        if len(parts) > len(spec.parts):
            raise RecordError(record, spec.column, f"an item has more than {len(spec.parts)} parts")
        named = zip(spec.parts, parts, strict=False)
        out.append({name: _translate(spec, p) for name, p in named if p})
    return out


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path; a trailing ``[n]`` appends to a list there.

    ``lines[1]`` and ``lines[2]`` fill one list from two columns, in map order.
    """
    parents, last, is_list = _steps(path)
    for key in parents:
        target = target.setdefault(key, {})
    if is_list:
        target.setdefault(last, []).append(value)
    else:
        target[last] = value


@functools.lru_cache(maxsize=4096)
def _steps(path: str) -> tuple[tuple[str, ...], str, bool]:
    # Parsed once per map path, not once per cell: _put runs for every cell of every row.
    keys = path.split(".")
    match = _LIST_ITEM.fullmatch(keys[-1])
    if match:
        return tuple(keys[:-1]), match.group(1), True
    return tuple(keys[:-1]), keys[-1], False


def row_to_record_dict(
    row: dict[str, Any], fmap: FieldMap, record: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn one flat row into the nested record dict; also return file cells by path.

    Empty cells are absent values. A consent whose cells are all empty was never
    asked and is left out. Raises RecordError naming the column.
    """
    out: dict[str, Any] = {}
    files: dict[str, str] = {}
    for spec in fmap.fields:
        raw = row.get(spec.column)
        if raw is None:
            continue
        if not isinstance(raw, str):
            if spec.type == "json" or isinstance(raw, list | dict):
                _put(out, spec.path, raw)
                continue
            raw = str(raw)
        if not raw.strip():
            continue
        value = _cell(spec, fmap, raw, record)
        if spec.type == "file":
            files[spec.path] = value
            continue
        _put(out, spec.path, value)
    for kind, consent in list(out.get("consents", {}).items()):
        # Shared columns (signer, version) fill every kind; without a status or a date
        # the consent was never asked.
        if "status" not in consent and "date" not in consent:
            del out["consents"][kind]
    for path in list(files):
        kind = path.split(".")[1] if path.startswith("consents.") else None
        if kind and kind not in out.get("consents", {}):
            del files[path]
    return out, files
