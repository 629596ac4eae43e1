"""Plans for the shape-cached validator: what R4B checks on each leaf of one shape.

Derived once per signature from a resource R4B accepted (see ``fast.py``): for every
scalar, the pydantic annotation R4B validates it with, grouped by type so one call
checks all leaves of a type; and the FHIR JSON problems the shape has. Values R4B checks
in Python (dates, instants, URLs) are remembered once valid.
"""

from __future__ import annotations

import types
from collections import defaultdict
from dataclasses import dataclass
from operator import itemgetter
from typing import Annotated, Any, Union, get_args, get_origin

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.constraints import FHIR_PRIMITIVES_MAPS, FHIR_TYPES_MAPS
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import TypeAdapter
from pydantic._internal._validators import import_string

from symfhir.validation.structural import Problem

_INT_TYPES = frozenset({"integer", "integer64", "unsignedInt", "positiveInt"})


class _Uncacheable(Exception):
    """The shape holds something whose validity R4B decides from values, not shape."""


@dataclass(frozen=True)
class _Field:
    name: str
    alias: str
    is_list: bool
    # The element type for complex fields, None for primitive ones. Its model class is
    # looked up only when the field is present: resolving it imports and builds the
    # class, and most fields of a resource type are never used.
    element_type: type[FhirBase] | None
    dynamic: bool  # ResourceType-like: the class comes from the value's resourceType
    prefix: str
    # Annotations R4B validates a non-null value / a non-null list item with (None
    # values are settled by the signature, so Optional is stripped).
    check: Any
    item_check: Any
    fhir_type: str  # FHIR primitive type name, "" for complex elements


@dataclass(frozen=True)
class Plan:
    # (pick leaves, validate them): one pydantic call per primitive type, not per leaf
    checks: tuple[tuple[Any, Any], ...] | None  # None: always use R4B for this shape
    json_problems: tuple[Problem, ...]


def unit_class(resource_type: str) -> type[FHIRAbstractModel] | None:
    try:
        return get_fhir_model_class(resource_type)
    except ValueError:
        return None


class _Deriver:
    def __init__(self) -> None:
        self.index = 0  # position in the leaf list, mirrors fast._walk exactly
        self.checks: list[tuple[int, Any]] = []  # (leaf index, primitive annotation)
        self.json: list[Problem] = []
        self.cacheable = True

    def leaf(self, check: Any, value: Any) -> None:
        # None's outcome depends only on its type, already fixed by the signature.
        if check is not None and value is not None:
            self.checks.append((self.index, check))
        self.index += 1

    def grouped(self) -> tuple[tuple[Any, Any], ...]:
        """Leaves of one primitive type validated together as ``tuple[X, ...]``."""
        by_type: dict[Any, list[int]] = defaultdict(list)
        for index, annotation in self.checks:
            by_type[annotation].append(index)
        groups = []
        for annotation, indexes in by_type.items():
            known = _known_valid(annotation)
            if known is not None:
                pick = itemgetter(*indexes)
                groups.append((pick, known.one if len(indexes) == 1 else known.many))
            elif len(indexes) == 1:
                groups.append(
                    (itemgetter(indexes[0]), _adapter(annotation).validator.validate_python)
                )
            else:
                many = _adapter(tuple[annotation, ...]).validator.validate_python
                groups.append((itemgetter(*indexes), many))
        return tuple(groups)

    def dict_(self, d: dict[str, Any], cls: type[FHIRAbstractModel], path: str) -> None:
        fields = _fields(cls)
        if not d:
            self.json.append(Problem(path, "empty objects are not allowed in FHIR JSON"))
        used: set[str] = set()
        for key, value in d.items():
            sub = f"{path}.{key}"
            if key == "resourceType":
                if value is not None and type(value) is not str:
                    raise _Uncacheable(sub)
                self.leaf(None, value)
                continue
            spec = fields.get(key)
            if spec is None or spec.name in used:
                # "resource_type" and duplicate alias/name pairs are decided by values
                raise _Uncacheable(sub)
            used.add(spec.name)
            if key != spec.alias:
                self.json.append(Problem(sub, f"FHIR JSON names this element {spec.alias}"))
            if key == "fhir_comments":
                self.json.append(Problem(sub, "fhir_comments is not part of FHIR JSON"))
            if value is None:
                self.json.append(Problem(sub, "null is not allowed here in FHIR JSON"))
            if spec.element_type is None:
                self.primitive(spec, value, sub)
            else:
                self.complex(spec, value, sub)

    def primitive(self, spec: _Field, value: Any, path: str) -> None:
        kind = type(value)
        if kind is dict:
            raise _Uncacheable(path)
        if kind is not list:
            self.leaf(spec.check, value)
            self.json_type(spec, value, path)
            return
        if spec.item_check is None:
            raise _Uncacheable(path)
        if not value:
            self.json.append(Problem(path, "empty arrays are not allowed in FHIR JSON"))
        for i, item in enumerate(value):
            if type(item) in (dict, list):
                raise _Uncacheable(f"{path}[{i}]")
            self.leaf(spec.item_check, item)
            self.json_type(spec, item, f"{path}[{i}]")

    def json_type(self, spec: _Field, value: Any, path: str) -> None:
        if value is None or not spec.fhir_type:
            return
        kind = type(value)
        if spec.fhir_type == "boolean":
            ok = kind is bool
        elif spec.fhir_type in _INT_TYPES:
            ok = kind is int
        elif spec.fhir_type == "decimal":
            ok = kind in (int, float)
        else:
            ok = kind is str
        if not ok:
            self.json.append(Problem(path, f"FHIR JSON needs a {spec.fhir_type} here"))

    def complex(self, spec: _Field, value: Any, path: str) -> None:
        kind = type(value)
        if kind is dict:
            self.element(spec, value, path)
        elif kind is list:
            if not value:
                self.json.append(Problem(path, "empty arrays are not allowed in FHIR JSON"))
            for i, item in enumerate(value):
                if type(item) is dict:
                    self.element(spec, item, f"{path}[{i}]")
                elif item is None:
                    self.leaf(None, item)
                else:
                    raise _Uncacheable(f"{path}[{i}]")
        elif value is None:
            self.leaf(None, value)
        else:
            # fhir_core parses a str (or bytes) here as JSON: its shape is not ours to know
            raise _Uncacheable(path)

    def element(self, spec: _Field, value: dict[str, Any], path: str) -> None:
        assert spec.element_type is not None
        model = spec.element_type.get_model_klass()
        nested_type = value.get("resourceType")
        if type(nested_type) is str:
            # A separate unit, validated as unit_class(nested_type); make sure that is
            # the class R4B uses at this position, or this shape cannot be cached.
            if spec.dynamic:
                target = import_string(FHIR_TYPES_MAPS[f"{spec.prefix}{nested_type}Type"])
            else:
                target = model
            if target is not unit_class(nested_type):
                raise _Uncacheable(path)
            return
        if "resourceType" in value and spec.dynamic:
            raise _Uncacheable(path)
        self.dict_(value, model, path)


def derive_plan(unit: dict[str, Any], cls: type[FHIRAbstractModel]) -> Plan:
    deriver = _Deriver()
    try:
        deriver.dict_(unit, cls, cls.get_resource_type())
    except (_Uncacheable, KeyError, ValueError, TypeError):
        return Plan(None, tuple(deriver.json))
    return Plan(deriver.grouped(), tuple(deriver.json))


_FIELD_CACHE: dict[type, dict[str, _Field]] = {}
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _fields(cls: type[FHIRAbstractModel]) -> dict[str, _Field]:
    """Every key R4B accepts on ``cls`` (JSON alias and python name) -> how to check it."""
    known = _FIELD_CACHE.get(cls)
    if known is not None:
        return known
    known = {}
    for name, info in cls.model_fields.items():
        spec = _field(name, info.alias or name, info.annotation)
        known[name] = spec
        known[spec.alias] = spec
    _FIELD_CACHE[cls] = known
    return known


def _field(name: str, alias: str, annotation: Any) -> _Field:
    is_list, inner = _unwrap(annotation)
    element = _strip_none(inner)
    if isinstance(element, type) and issubclass(element, FhirBase):
        return _Field(
            name,
            alias,
            bool(is_list),
            element,
            issubclass(element, FhirElementOrResourceBase),
            element._prefix,
            None,
            None,
            "",
        )
    item = inner if is_list else _list_item(annotation)
    return _Field(
        name,
        alias,
        bool(is_list),
        None,
        False,
        "",
        _strip_none(annotation) if is_list is not None else annotation,
        None if item is None else _strip_none(item),
        _primitive_name(element if item is None else _strip_none(item)),
    )


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(annotation)
    if adapter is None:
        adapter = _ADAPTERS[annotation] = TypeAdapter(annotation)
    return adapter


class _KnownValid:
    """Short strings already found valid for one primitive type R4B checks in Python.

    Dates, date-times, instants, times and URLs are checked by Python functions in
    fhir_core, ~20x the cost of a pattern checked in Rust, and one client repeats the
    same few dates across most of its resources. A valid string stays valid, so each
    distinct one is checked once (the set is bounded and starts over when full).
    """

    def __init__(self, annotation: Any) -> None:
        self.validate = _adapter(tuple[annotation, ...]).validator.validate_python
        self.known: set[str] = set()

    def one(self, value: Any) -> None:
        if type(value) is not str or value not in self.known:
            self.validate((value,))
            self._remember((value,))

    def many(self, values: tuple[Any, ...]) -> None:
        known = self.known
        todo = tuple(v for v in values if type(v) is not str or v not in known)
        if todo:
            self.validate(todo)
            self._remember(todo)

    def _remember(self, values: tuple[Any, ...]) -> None:
        if len(self.known) >= _KNOWN_MAX:
            self.known.clear()
        self.known.update(v for v in values if type(v) is str and len(v) <= _KNOWN_LEN)


_KNOWN_MAX = 4096
_KNOWN_LEN = 256  # base64Binary is Python-checked too: photos are never remembered
_KNOWN: dict[Any, _KnownValid | None] = {}


def _known_valid(annotation: Any) -> _KnownValid | None:
    """The shared memo for ``annotation`` when R4B checks it with Python code, else None."""
    if annotation not in _KNOWN:
        python = _has_python_check(_adapter(annotation).core_schema)
        _KNOWN[annotation] = _KnownValid(annotation) if python else None
    return _KNOWN[annotation]


def _has_python_check(schema: Any) -> bool:
    """Whether a pydantic core schema validates with a Python function (serializers aside)."""
    if isinstance(schema, dict):
        if str(schema.get("type", "")).startswith("function-"):
            return True
        return any(_has_python_check(v) for k, v in schema.items() if k != "serialization")
    if isinstance(schema, list):
        return any(_has_python_check(v) for v in schema)
    return False


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _strip_none(tp: Any) -> Any:
    if _is_union(tp):
        rest = [a for a in get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return _strip_none(rest[0])
    return tp


def _unwrap(tp: Any) -> tuple[bool | None, Any]:
    """(is_list, element type); is_list is None for a union of several types."""
    tp = _strip_none(tp)
    if _is_union(tp):
        return None, tp
    if get_origin(tp) is list:
        return True, get_args(tp)[0]
    return False, tp


def _list_item(annotation: Any) -> Any:
    """The item type of the single ``List[X]`` in a union like ``str | List[str]``."""
    tp = _strip_none(annotation)
    if not _is_union(tp):
        return None
    lists = [a for a in get_args(tp) if get_origin(a) is list]
    return get_args(lists[0])[0] if len(lists) == 1 else None


def _primitive_name(tp: Any) -> str:
    if get_origin(tp) is Annotated:
        for meta in tp.__metadata__:
            name = FHIR_PRIMITIVES_MAPS.get(type(meta))
            if name:
                return name
        tp = get_args(tp)[0]
    try:
        return FHIR_PRIMITIVES_MAPS.get(tp, "")
    except TypeError:  # unhashable typing construct
        return ""
