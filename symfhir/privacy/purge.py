"""The portal's daily clean-up (``purge``): verification codes and rate events past their use
(``verification.purge_codes``), links long dead (``links.purge_links``), and access packages
in the package folder once they are older than the ``packages.keep_hours`` of
mappings/privacy.yaml.

An access package holds a client's whole record: it is kept only as long as it may still be
downloaded. One is deleted once it is older than ``keep_hours`` (at least a download link's
lifetime) and no live download link may fetch it: none names it (by file name, path, or the
portal's ``Task/<id>|<name>``), and none made after it was written names something other
than a package of the folder (a target of another shape might lead to any package older
than the link, which then stays at most a link's lifetime longer). Only files named as the
access handler names its packages are touched, never a folder, a symbolic link or another
file.

Idempotent and safe to run at any time, in parallel too: each step deletes only what is past
its time, and a file already gone counts as nothing.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select

from symfhir.errors import ConfigError
from symfhir.privacy.handover import PACKAGE_NAME
from symfhir.privacy.links import _PURPOSE_TARGET, purge_links
from symfhir.privacy.portal_settings import load_link_kinds
from symfhir.privacy.verification import purge_codes
from symfhir.store import Store
from symfhir.store.tables import Link
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

DOWNLOAD = "download"
#: The Task id in an access package's name (``symfhir.export.access_request``).
_TASK_PART = re.compile(r"access-([A-Za-z0-9.-]{1,64})-\d{8}T\d{6}-[0-9a-f]{16}\.zip")


@dataclass(frozen=True)
class Purged:
    """What one purge removed: code and rate rows, links, package files; and the packages
    past their time kept because a download link made after them is still live."""

    codes: int
    links: int
    packages: int
    packages_kept: int


@lru_cache(maxsize=8)
def load_package_keep(path: Path | None = None) -> timedelta:
    """How long an access package is kept (``packages.keep_hours`` of mappings/privacy.yaml,
    or ``path``). Raises ConfigError when it is missing, not a whole number of hours, or
    shorter than the download link's lifetime (a live link would name a deleted file)."""
    path = path or MAPPINGS_DIR / "privacy.yaml"
    data = read_mapping_file(path, "privacy settings")
    hours = (data.get("packages") or {}).get("keep_hours")
    if isinstance(hours, bool) or not isinstance(hours, int) or hours < 1:
        raise ConfigError("privacy settings: packages.keep_hours must be a whole number >= 1")
    keep = timedelta(hours=hours)
    download = load_link_kinds(path).get(DOWNLOAD)
    if download is not None and keep < download.lifetime:
        raise ConfigError(
            "privacy settings: packages.keep_hours is shorter than links.download.hours"
        )
    return keep


def purge(
    store: Store,
    folder: Path,
    *,
    now: datetime,
    keep: timedelta | None = None,
) -> Purged:
    """Run the clean-up at ``now``: codes, links, then the access packages of ``folder``
    (see the module docstring); ``keep`` defaults to ``load_package_keep()``. A missing
    folder holds no package.

    Raises ConfigError for unusable settings, StoreError when the store fails, OSError when
    the folder cannot be read.
    """
    keep = load_package_keep() if keep is None else keep
    codes = purge_codes(store, now=now)
    links = purge_links(store, now=now)
    deleted = kept = 0
    packages = _packages(folder)
    names = {path: _lookups(store, path) for path, _ in packages}
    ours = set().union(*names.values()) if names else set()
    live = _live_downloads(store, now)
    for path, written in packages:
        if now - written < keep:
            continue
        if any(
            target in names[path] or (target not in ours and created >= written)
            for target, created in live
        ):
            kept += 1
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # another run took it
        deleted += 1
    return Purged(codes, links, deleted, kept)


def _packages(folder: Path) -> list[tuple[Path, datetime]]:
    """The access packages in ``folder`` with the time each was written (regular files of the
    handler's name shape only; nothing beneath)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if not PACKAGE_NAME.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            found.append((Path(entry.path), datetime.fromtimestamp(info.st_mtime, UTC)))
    return sorted(found)


def _lookups(store: Store, path: Path) -> frozenset[str]:
    """The target lookups a download link to ``path`` may carry: its name, its path, or the
    portal's ``Task/<id>|<name>`` (the Task id is the name's second part). Targets are sealed
    in the store; only their keyed hash (links.py's) can be compared."""
    forms = {path.name, str(path), str(path.absolute())}
    task = _TASK_PART.match(path.name)
    if task:
        forms.add(f"Task/{task.group(1)}|{path.name}")
    return frozenset(store.lookup(_PURPOSE_TARGET, form) for form in forms)


def _live_downloads(store: Store, now: datetime) -> list[tuple[str, datetime]]:
    """(target lookup, made at) of every download link that may still open at ``now``."""
    with store.session(readonly=True) as session:
        rows = session.execute(
            select(Link.target_lookup, Link.created_at).where(
                Link.kind == DOWNLOAD,
                Link.revoked_at.is_(None),
                Link.expires_at > now,
                (Link.max_uses.is_(None)) | (Link.uses < Link.max_uses),
            )
        ).all()
    return [(str(target), created) for target, created in rows]
