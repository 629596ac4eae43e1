"""Sliding-window request limits of the link service, per link and per client address.

In memory, per process: with several workers each counts its own share, so a limit holds
within a factor of the worker count (the passcode cap, which must hold exactly, is in the
store). Keys are hashes (a manifest id is a secret) and idle keys are dropped.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from symfhir.sharing.link_settings import Window


class SlidingWindow:
    """At most ``window.requests`` hits per key within any ``window.seconds``."""

    def __init__(self, window: Window, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = clock()

    def hit(self, key: str) -> int | None:
        """Count one request for ``key``; None when allowed, else the seconds to wait (the
        refused request is not counted)."""
        now = self._clock()
        span = self._window.seconds
        with self._lock:
            if now - self._swept > span:
                self._sweep(now)
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - span:
                hits.popleft()
            if len(hits) >= self._window.requests:
                return max(1, math.ceil(hits[0] + span - now))
            hits.append(now)
            return None

    def _sweep(self, now: float) -> None:
        # Keys with no hit inside the window hold nothing worth keeping.
        span = self._window.seconds
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - span]:
            del self._hits[key]
        self._swept = now
