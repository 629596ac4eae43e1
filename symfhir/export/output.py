"""Where an export's bytes go: a sink that counts and hashes them as they pass, and the
file that only appears, complete, under its final name."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

PART = ".part"
PART_PREFIX = ".symfhir-"


class HashingWriter:
    """Forwards writes to ``dest`` and keeps their count, SHA-256 and SHA-1.

    It says it cannot seek, so a ZIP written through it is written in one forward pass
    (data descriptors after each member) and the hashes are those of the whole file.
    """

    def __init__(self, dest: IO[bytes]) -> None:
        self._dest = dest
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1(usedforsecurity=False)

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self._dest.write(view)
        self._sha256.update(view)
        self._sha1.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        raise OSError("an export is written in one forward pass")

    def flush(self) -> None:
        self._dest.flush()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def sha1(self) -> bytes:
        return self._sha1.digest()


@contextmanager
def complete_file(path: Path) -> Iterator[IO[bytes]]:
    """A file opened for writing beside ``path`` that becomes ``path`` only when the block
    ends without an error (an interrupted export leaves no half-written package; a re-run
    starts afresh). The file is readable by its owner only: it holds a client's record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Only symfhir's own leftovers are swept: the folder may be anyone's.
    sweep_stale(path.parent, f"{PART_PREFIX}*{PART}")
    fd, temp = tempfile.mkstemp(prefix=f"{PART_PREFIX}{path.name}.", suffix=PART, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


#: A leftover of an export that was killed (no ``finally`` ran) is removed after this long.
STALE_SECONDS = 24 * 3600


def sweep_stale(folder: Path, pattern: str, *, now: float | None = None) -> int:
    """Remove what ``pattern`` matches in ``folder`` (files or folders) not modified for
    STALE_SECONDS: the half-written package or staged record of an export that was killed.
    Returns how many were removed; errors are ignored (another process may be removing)."""
    cutoff = (time.time() if now is None else now) - STALE_SECONDS
    removed = 0
    for path in folder.glob(pattern):
        try:
            if path.lstat().st_mtime >= cutoff:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError:
            continue
    return removed
