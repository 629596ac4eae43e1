"""The import checkpoint: which records of which input are settled on which server.

A record is *settled* once the server has it (its transaction committed) or has
refused it (it is in the rejects file). The file is rewritten atomically after every
batch, so a run killed at any point leaves a checkpoint that is at worst one batch
behind; those records are sent again on ``--resume`` and, the writes being
conditional, land exactly once. Only record numbers and counts are stored: no PHI.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError

FORMAT = 1


def input_digest(path: Path) -> str:
    """SHA-256 of the input file, so a checkpoint is never applied to another input."""
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


@dataclass
class Checkpoint:
    path: Path
    key: dict[str, str]  # input digest, server, mapping, mode: what the numbers refer to
    # Settled numbers: all below ``below`` plus ``beyond`` (batches finish out of
    # order across workers), so saving stays cheap however long the input is.
    below: int = 1
    beyond: set[int] = field(default_factory=set)
    imported: int = 0
    rejected: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    complete: bool = False

    @classmethod
    def fresh(cls, path: Path, key: dict[str, str]) -> Checkpoint:
        return cls(path, key)

    @classmethod
    def resume(cls, path: Path, key: dict[str, str]) -> Checkpoint:
        """The checkpoint at ``path``; a fresh one when there is none.

        Raises ConfigError when it belongs to another input, server, mapping or mode.
        """
        if not path.exists():
            return cls.fresh(path, key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError("unknown format")
            stored_key = dict(data["key"])
            point = cls(
                path,
                stored_key,
                1,
                set(),
                int(data["imported"]),
                int(data["rejected"]),
                Counter({k: int(v) for k, v in data["outcomes"].items()}),
                bool(data["complete"]),
            )
            for start, end in data["settled"]:
                point._add(range(int(start), int(end) + 1))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"checkpoint {path} is unreadable ({err}); delete it") from None
        for name, value in key.items():
            if stored_key.get(name) != value:
                raise ConfigError(
                    f"checkpoint {path} was written for a different {name}; run without "
                    "--resume to start over"
                )
        return point

    def is_settled(self, number: int) -> bool:
        return number < self.below or number in self.beyond

    @property
    def settled_count(self) -> int:
        return self.below - 1 + len(self.beyond)

    def settle(
        self, numbers: list[int], imported: int, rejected: int, outcomes: Counter[str]
    ) -> None:
        self._add(numbers)
        self.imported += imported
        self.rejected += rejected
        self.outcomes.update(outcomes)

    def _add(self, numbers: Iterable[int]) -> None:
        self.beyond.update(n for n in numbers if n >= self.below)
        while self.below in self.beyond:
            self.beyond.remove(self.below)
            self.below += 1

    def save(self) -> None:
        """Write atomically: a kill mid-write leaves the previous checkpoint intact."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "key": self.key,
            "settled": ([[1, self.below - 1]] if self.below > 1 else []) + _ranges(self.beyond),
            "imported": self.imported,
            "rejected": self.rejected,
            "outcomes": dict(self.outcomes),
            "complete": self.complete,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _ranges(numbers: set[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for n in sorted(numbers):
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out
