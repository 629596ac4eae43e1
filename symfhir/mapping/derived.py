"""Values worked out once from a mapping data object (a Consent template, a Questionnaire).

Mapping functions stay pure, but what they derive from the mapping data need not be
derived again for every client. The data objects are dicts, which cannot be hashed, so
they are keyed by identity; each cached object is held, so its id cannot be reused by
another while the entry lives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

S = TypeVar("S")
V = TypeVar("V")


class Derived(Generic[S, V]):
    """``build(source)`` for each source object, built once (at most ``limit`` kept)."""

    def __init__(self, build: Callable[[S], V], limit: int) -> None:
        self._build = build
        self._limit = limit
        self._items: dict[int, tuple[S, V]] = {}

    def __call__(self, source: S) -> V:
        hit = self._items.get(id(source))
        if hit is not None and hit[0] is source:
            return hit[1]
        if len(self._items) >= self._limit:
            self._items.clear()
        value = self._build(source)
        self._items[id(source)] = (source, value)
        return value
