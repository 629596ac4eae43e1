"""Import progress on stderr: a redrawn bar on a terminal, plain lines otherwise (CI, logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

_BAR = 28


class Progress:
    """Shows ``done/total`` records with rate and ETA; never prints record contents."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        tty: bool | None = None,
        every_s: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s if not self.tty else 0.1
        self.clock = clock or time.monotonic
        self.start = self.clock()
        self.last = self.start  # the first line after every_s, not a "0 done" line
        self.line_len = 0

    def update(self, done: int, imported: int, rejected: int, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        text = self._text(done, imported, rejected, now - self.start)
        if self.tty:
            self.stream.write("\r" + text.ljust(self.line_len))
            self.line_len = len(text)
        else:
            self.stream.write(f"import: {text}\n")
        self.stream.flush()

    def finish(self, done: int, imported: int, rejected: int) -> None:
        self.update(done, imported, rejected, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _text(self, done: int, imported: int, rejected: int, elapsed: float) -> str:
        share = done / self.total if self.total else 1.0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        counts = (
            f"{done}/{self.total} records ({share:.0%}): {imported} imported, {rejected} rejected"
        )
        timing = f"{rate:.0f} rec/s, {_clock(elapsed)} elapsed, ETA {_clock(eta)}"
        if self.tty:
            filled = int(_BAR * share)
            return f"[{'#' * filled}{'.' * (_BAR - filled)}] {counts}, {timing}"
        return f"{counts}, {timing}"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
