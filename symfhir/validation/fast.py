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
its own entry list has a shape not seen before. Plans are derived in ``plans.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fhir_core.fhirabstractmodel import FHIRAbstractModel

from symfhir.validation.plans import Plan, derive_plan, unit_class
from symfhir.validation.structural import Problem, gc_paused, resource_class, validate_resource

Appender = Callable[[Any], None]
_UNIT = object()  # signature token: a nested resource, validated as its own unit


class FastValidator:
    """Validate FHIR R4 resource dicts with the same decisions as ``validate_resource``.

    ``validate`` returns ``[]`` exactly when ``validate_resource`` does, and otherwise
    ``validate_resource``'s problems. ``validate_fhir_json`` also reports what R4B lets
    through but FHIR JSON forbids. The cache holds at most ``max_shapes`` signatures
    (shapes only, never values). Safe to share between threads.
    """

    def __init__(self, max_shapes: int = 4096) -> None:
        self._max = max_shapes
        self._plans: dict[tuple[Any, ...], Plan] = {}
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
        key, leaves, units = _signature(resource, cls)
        plan = self._get(key)
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
        key = _signature(resource, cls)[0]
        if self._get(key) is not None:
            return
        with gc_paused():
            plan = derive_plan(resource, cls)
        if plan.checks is not None and not plan.json_problems:
            self._put(key, plan)

    # -- the fast path ---------------------------------------------------------------

    def _check(self, unit: dict[str, Any], cls: type[FHIRAbstractModel]) -> list[Problem] | None:
        """None when R4B rejects ``unit``; else its FHIR JSON problems (usually none).

        One walk gives both the signature and the leaves; the plan cached for the
        signature then says which leaves to check and which JSON problems the shape has.
        """
        key, leaves, units = _signature(unit, cls)
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
        self, plan: Plan, leaves: list[Any], units: list[dict[str, Any]]
    ) -> list[Problem] | None:
        """Run a cached plan's value checks, then the nested units: None on any failure."""
        try:
            for pick, check in plan.checks or ():
                check(pick(leaves))
        except Exception:  # any failure: the reference reports it
            return None
        problems = list(plan.json_problems)
        for nested in units:
            nested_cls = unit_class(nested["resourceType"])
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
            nested_cls = unit_class(nested["resourceType"])
            if nested_cls is not None:
                problems += self._check(nested, nested_cls) or []
        return problems

    def _learn(self, unit: dict[str, Any], cls: type[FHIRAbstractModel], key: tuple) -> Plan:
        """Cache plans for a unit R4B has just accepted, and for its nested units."""
        plan = derive_plan(unit, cls)
        self._put(key, plan)
        units: list[dict[str, Any]] = []
        _walk(unit, _discard, _discard, units.append)
        for nested in units:
            nested_cls = unit_class(nested["resourceType"])
            if nested_cls is None:
                continue
            self._learn(nested, nested_cls, _signature(nested, nested_cls)[0])
        return plan

    def _get(self, key: tuple[Any, ...]) -> Plan | None:
        # A plain lookup, no LRU bookkeeping: it runs for every resource, and a dict
        # read is atomic under the GIL. Eviction is oldest-first (see _put).
        return self._plans.get(key)

    def _put(self, key: tuple[Any, ...], plan: Plan) -> None:
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


def _signature(
    unit: dict[str, Any], cls: type[FHIRAbstractModel]
) -> tuple[tuple[Any, ...], list[Any], list[dict[str, Any]]]:
    """(signature, scalar leaves, nested units) of ``unit`` validated as ``cls``: one walk."""
    tokens: list[Any] = [cls]
    leaves: list[Any] = []
    units: list[dict[str, Any]] = []
    _walk(unit, tokens.append, leaves.append, units.append)
    return tuple(tokens), leaves, units


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
