"""Shape-cached validation that decides exactly as the R4B models do, at a fraction of the cost.

A resource's *signature* is its shape: dict keys (recursively, in order), list lengths,
the Python type of every scalar, and the ``resourceType`` of every resource. The first
time a signature is seen the resource is validated with R4B; when valid, a plan is
derived for that signature: for each scalar, the pydantic validator R4B applies to it
(the field's own primitive annotation from ``fhir_core.types``, wrapped in a
``TypeAdapter``, so dates, decimals, base64, patterns and bounds behave identically).
Later resources of the same shape only run those per-scalar checks. Everything else R4B
checks (unknown keys, required elements, choice ``[x]`` rules, null items, primitive
``_field`` siblings, nested resource types) depends only on the shape, and the shape
was accepted once. Any failed check falls back to the full R4B validation, so the
problems reported are always R4B's own.

Nested resources (``contained``, ``Bundle.entry.resource``) are separate units with
their own signatures: R4B validates them with the class their ``resourceType`` names,
independently of where they sit, so a Bundle of known resources is cheap even when
its own entry list has a shape not seen before.
"""

from __future__ import annotations

import threading
import types
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Annotated, Any, Union, get_args, get_origin

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.constraints import FHIR_PRIMITIVES_MAPS, FHIR_TYPES_MAPS
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import TypeAdapter
from pydantic._internal._validators import import_string

from symfhir.validation.structural import Problem, gc_paused, resource_class, validate_resource

Appender = Callable[[Any], None]
_UNIT = object()  # signature token: a nested resource, validated as its own unit
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
class _Plan:
    # (pick leaves, validate them): one pydantic call per primitive type, not per leaf
    checks: tuple[tuple[Any, Any], ...] | None  # None: always use R4B for this shape
    json_problems: tuple[Problem, ...]


class FastValidator:
    """Validate FHIR R4 resource dicts with the same decisions as ``validate_resource``.

    ``validate`` returns ``[]`` exactly when ``validate_resource`` does, and otherwise
    ``validate_resource``'s problems. ``validate_fhir_json`` also reports what R4B lets
    through but FHIR JSON forbids. The cache holds at most ``max_shapes`` signatures
    (shapes only, never values). Safe to share between threads.
    """

    def __init__(self, max_shapes: int = 4096) -> None:
        self._max = max_shapes
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def validate(self, resource: dict[str, Any]) -> list[Problem]:
        """Problems in ``resource`` (``[]`` when valid), exactly as R4B decides."""
        cls = resource_class(resource.get("resourceType")) if type(resource) is dict else None
        if cls is not None and self._check(resource, cls) is not None:
            return []
        return validate_resource(resource)

    def validate_fhir_json(self, resource: dict[str, Any]) -> list[Problem]:
        """R4B's problems, or when R4B accepts, what keeps the dict from being FHIR JSON.

        R4B is lenient where FHIR JSON is not: ``"5"`` for an integer, ``"true"`` for a
        boolean, empty arrays and objects, ``null`` values, ``fhir_comments``, python
        field names (``class_fhir``, ``status__ext``) instead of JSON names.
        """
        cls = resource_class(resource.get("resourceType")) if type(resource) is dict else None
        if cls is not None:
            json_problems = self._check(resource, cls)
            if json_problems is not None:
                return json_problems
        return validate_resource(resource)

    def cache_size(self) -> int:
        return len(self._plans)

    def known_shape_problems(self, resource: dict[str, Any]) -> list[Problem] | None:
        """``validate_fhir_json``'s answer when ``resource``'s shape is cached and every
        value passes its check; None when the shape is unknown or a value fails, and the
        caller must decide another way. Never runs R4B on the whole resource: that is
        for types whose full validation is too costly to run per shape (responses)."""
        cls = resource_class(resource.get("resourceType")) if type(resource) is dict else None
        if cls is None:
            return None
        tokens: list[Any] = [cls]
        leaves: list[Any] = []
        units: list[dict[str, Any]] = []
        _walk(resource, tokens.append, leaves.append, units.append)
        plan = self._get(tuple(tokens))
        if plan is None or plan.checks is None:
            return None
        self.hits += 1
        return self._apply(plan, leaves, units)

    def learn_accepted(self, resource: dict[str, Any]) -> None:
        """Cache the plan of a resource R4B is known to accept, without asking R4B again.

        For ``validate_split``: a response whose every unit R4B accepted is accepted
        whole (R4B has no rule spanning items). A shape whose plan finds FHIR JSON
        problems is left to the unit-by-unit path, which reports them as it always has.
        """
        cls = resource_class(resource.get("resourceType")) if type(resource) is dict else None
        if cls is None:
            return
        tokens: list[Any] = [cls]
        _walk(resource, tokens.append, _discard, _discard)
        key = tuple(tokens)
        if self._get(key) is not None:
            return
        with gc_paused():
            plan = _derive(resource, cls)
        if plan.checks is not None and not plan.json_problems:
            self._put(key, plan)

    # -- the fast path ---------------------------------------------------------------

    def _check(self, unit: dict[str, Any], cls: type[FHIRAbstractModel]) -> list[Problem] | None:
        """None when R4B rejects ``unit``; else its FHIR JSON problems (usually none).

        One walk gives both the signature and the leaves; the plan cached for the
        signature then says which leaves to check and which JSON problems the shape has.
        """
        tokens: list[Any] = [cls]
        leaves: list[Any] = []
        units: list[dict[str, Any]] = []
        _walk(unit, tokens.append, leaves.append, units.append)
        key = tuple(tokens)
        plan = self._get(key)
        if plan is None:
            self.misses += 1
            with gc_paused():  # a new shape may build R4B classes (first use of a type)
                try:
                    cls.model_validate(unit)
                except Exception:  # any failure: the reference reports it
                    return None
                plan = self._learn(unit, cls, key)
            return list(plan.json_problems) + self._nested_json_problems(units)
        self.hits += 1
        if plan.checks is None:
            if not _r4b_accepts(unit, cls):
                return None
            return self._apply(plan, [], units)
        return self._apply(plan, leaves, units)

    def _apply(
        self, plan: _Plan, leaves: list[Any], units: list[dict[str, Any]]
    ) -> list[Problem] | None:
        """Run a cached plan's value checks, then the nested units: None on any failure."""
        try:
            for pick, check in plan.checks or ():
                check(pick(leaves))
        except Exception:  # any failure: the reference reports it
            return None
        problems = list(plan.json_problems)
        for nested in units:
            nested_cls = _unit_class(nested["resourceType"])
            if nested_cls is None:
                return None
            nested_problems = self._check(nested, nested_cls)
            if nested_problems is None:
                return None
            problems += nested_problems
        return problems

    def _nested_json_problems(self, units: list[dict[str, Any]]) -> list[Problem]:
        """JSON problems of nested units R4B has just accepted as part of their parent."""
        problems: list[Problem] = []
        for nested in units:
            nested_cls = _unit_class(nested["resourceType"])
            if nested_cls is not None:
                problems += self._check(nested, nested_cls) or []
        return problems

    def _learn(self, unit: dict[str, Any], cls: type[FHIRAbstractModel], key: tuple) -> _Plan:
        """Cache plans for a unit R4B has just accepted, and for its nested units."""
        plan = _derive(unit, cls)
        self._put(key, plan)
        units: list[dict[str, Any]] = []
        _walk(unit, _discard, _discard, units.append)
        for nested in units:
            nested_cls = _unit_class(nested["resourceType"])
            if nested_cls is None:
                continue
            tokens: list[Any] = [nested_cls]
            _walk(nested, tokens.append, _discard, _discard)
            self._learn(nested, nested_cls, tuple(tokens))
        return plan

    def _get(self, key: tuple[Any, ...]) -> _Plan | None:
        # A plain lookup, no LRU bookkeeping: it runs for every resource, and a dict
        # read is atomic under the GIL. Eviction is oldest-first (see _put).
        return self._plans.get(key)

    def _put(self, key: tuple[Any, ...], plan: _Plan) -> None:
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self._max:
                del self._plans[next(iter(self._plans))]


def _r4b_accepts(unit: dict[str, Any], cls: type[FHIRAbstractModel]) -> bool:
    try:
        cls.model_validate(unit)
    except Exception:  # any failure: the reference reports it
        return False
    return True


def _discard(_: Any) -> None:
    pass


def _walk(d: dict[str, Any], token: Appender, leaf: Appender, unit: Appender) -> None:
    """Append ``d``'s signature tokens and scalar leaves (document order).

    The hottest loop of ``symfhir map``: strings are tested first (most leaves are),
    and the appenders are bound methods, not lists, to save attribute lookups.
    """
    token(tuple(d))
    for value in d.values():
        kind = type(value)
        if kind is str:
            token(str)
            leaf(value)
        elif kind is dict:
            nested_type = value.get("resourceType")
            if type(nested_type) is str:
                token(_UNIT)
                token(nested_type)
                unit(value)
            else:
                _walk(value, token, leaf, unit)
        elif kind is list:
            _walk_list(value, token, leaf, unit)
        else:
            token(kind)
            leaf(value)


def _walk_list(items: list[Any], token: Appender, leaf: Appender, unit: Appender) -> None:
    token(len(items))
    for value in items:
        kind = type(value)
        if kind is dict:
            nested_type = value.get("resourceType")
            if type(nested_type) is str:
                token(_UNIT)
                token(nested_type)
                unit(value)
            else:
                _walk(value, token, leaf, unit)
        elif kind is list:
            _walk_list(value, token, leaf, unit)
        else:
            token(kind)
            leaf(value)


def _unit_class(resource_type: str) -> type[FHIRAbstractModel] | None:
    try:
        return get_fhir_model_class(resource_type)
    except ValueError:
        return None


# -- plan derivation (runs once per signature, on a resource R4B accepted) ----------


class _Deriver:
    def __init__(self) -> None:
        self.index = 0  # position in the leaf list, mirrors _walk exactly
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
            # A separate unit, validated as _unit_class(nested_type); make sure that is
            # the class R4B uses at this position, or this shape cannot be cached.
            if spec.dynamic:
                target = import_string(FHIR_TYPES_MAPS[f"{spec.prefix}{nested_type}Type"])
            else:
                target = model
            if target is not _unit_class(nested_type):
                raise _Uncacheable(path)
            return
        if "resourceType" in value and spec.dynamic:
            raise _Uncacheable(path)
        self.dict_(value, model, path)


def _derive(unit: dict[str, Any], cls: type[FHIRAbstractModel]) -> _Plan:
    deriver = _Deriver()
    try:
        deriver.dict_(unit, cls, cls.get_resource_type())
    except (_Uncacheable, KeyError, ValueError, TypeError):
        return _Plan(None, tuple(deriver.json))
    return _Plan(deriver.grouped(), tuple(deriver.json))


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
