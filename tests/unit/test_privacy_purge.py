"""symfhir.privacy.purge and ``symfhir privacy purge``: expired codes, dead links and access
packages past their time go; a package a live download link may still fetch, a fresh one and
any file not named as a package stay; a second run deletes nothing."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import ConfigError
from symfhir.privacy.links import create_link, resolve_link
from symfhir.privacy.purge import load_package_keep, purge
from symfhir.privacy.verification import issue_code
from symfhir.store import Store

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
WRITTEN = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)
DAY = timedelta(hours=24)


def package(folder: Path, task: str, written: datetime) -> Path:
    path = folder / f"access-{task}-{written:%Y%m%dT%H%M%S}-{os.urandom(8).hex()}.zip"
    path.write_bytes(b"PK synthetic package")
    os.utime(path, (written.timestamp(), written.timestamp()))
    return path


def aged(path: Path, written: datetime) -> Path:
    os.utime(path, (written.timestamp(), written.timestamp()), follow_symlinks=False)
    return path


def test_old_packages_go_unless_a_live_download_link_may_fetch_them(
    store: Store, tmp_path: Path
) -> None:
    old = package(tmp_path, "t1", WRITTEN)
    linked = package(tmp_path, "t2", WRITTEN)
    fresh = package(tmp_path, "t3", WRITTEN + 20 * timedelta(hours=1))
    # Not the access handler's: never touched, however old.
    other = tmp_path / "access-notes.zip"
    other.write_bytes(b"x")
    aged(other, WRITTEN)
    folder_like = tmp_path / f"access-t4-{WRITTEN:%Y%m%dT%H%M%S}-{'0' * 16}.zip"
    folder_like.mkdir()
    aged(folder_like, WRITTEN)
    target = tmp_path.parent / "outside.zip"
    target.write_bytes(b"someone else's")
    symlink = tmp_path / f"access-t5-{WRITTEN:%Y%m%dT%H%M%S}-{'1' * 16}.zip"
    symlink.symlink_to(target)
    aged(symlink, WRITTEN)
    # The portal handed out a download link two hours after the package was written (its
    # target as the portal writes it: the Task and the package's name).
    target_of = f"Task/t2|{linked.name}"
    token = create_link(store, "download", target_of, now=WRITTEN + timedelta(hours=2))

    now = WRITTEN + DAY + timedelta(hours=1)
    done = purge(store, tmp_path, now=now, keep=DAY)
    assert (done.packages, done.packages_kept) == (1, 1)
    assert not old.exists()
    assert linked.exists() and fresh.exists() and other.exists() and folder_like.is_dir()
    assert symlink.is_symlink() and target.exists()
    assert resolve_link(store, token, now=now, kind="download") == target_of

    # A live link to something else than a package (a Task) keeps what is older than it.
    create_link(store, "download", "Task/t3", now=now)
    kept = purge(store, tmp_path, now=WRITTEN + 45 * timedelta(hours=1), keep=DAY)
    assert (kept.packages, kept.packages_kept) == (0, 2)
    assert fresh.exists()

    # Once the links are dead (expired), the packages go too; a second run finds nothing.
    later = WRITTEN + 2 * DAY + timedelta(hours=3)
    assert purge(store, tmp_path, now=later, keep=DAY).packages == 2
    assert not linked.exists() and not fresh.exists()
    again = purge(store, tmp_path, now=later, keep=DAY)
    assert (again.packages, again.packages_kept) == (0, 0)


@pytest.mark.parametrize("form", ["name", "path"])
def test_a_link_naming_the_package_keeps_it_and_only_it(
    store: Store, tmp_path: Path, form: str
) -> None:
    named = package(tmp_path, "t1", WRITTEN)
    other = package(tmp_path, "t2", WRITTEN)
    target = named.name if form == "name" else str(named)
    create_link(store, "download", target, now=WRITTEN + timedelta(hours=2))
    done = purge(store, tmp_path, now=WRITTEN + DAY + timedelta(hours=1), keep=DAY)
    assert (done.packages, done.packages_kept) == (1, 1)
    assert named.exists() and not other.exists()


def test_a_used_up_or_revoked_link_keeps_nothing(store: Store, tmp_path: Path) -> None:
    from symfhir.privacy.links import revoke_link

    used = package(tmp_path, "t1", WRITTEN)
    token = create_link(store, "download", used.name, now=WRITTEN, max_uses=1)
    assert resolve_link(store, token, now=WRITTEN) == used.name  # its one use
    revoked = create_link(store, "download", "another", now=WRITTEN + timedelta(hours=1))
    revoke_link(store, revoked, now=WRITTEN + timedelta(hours=2))
    done = purge(store, tmp_path, now=WRITTEN + DAY + timedelta(hours=1), keep=DAY)
    assert (done.packages, done.packages_kept) == (1, 0)


def test_codes_and_links_past_their_time_are_purged_once(store: Store, tmp_path: Path) -> None:
    issue_code(store, "Task/t1", "email", "avery.q@example.com", now=WRITTEN)
    create_link(store, "status", "Task/t1", now=WRITTEN, ttl=timedelta(hours=1))
    live = create_link(store, "status", "Task/t2", now=WRITTEN)
    now = WRITTEN + timedelta(days=40)
    first = purge(store, tmp_path / "no-such-folder", now=now, keep=DAY)
    assert first.codes >= 2  # the code and its rate event
    assert first.links == 1
    assert first.packages == 0
    second = purge(store, tmp_path / "no-such-folder", now=now, keep=DAY)
    assert (second.codes, second.links) == (0, 0)
    assert resolve_link(store, live, now=now) == "Task/t2"


def test_the_package_lifetime_is_read_from_the_privacy_settings(tmp_path: Path) -> None:
    assert load_package_keep() >= timedelta(hours=24)
    settings = tmp_path / "privacy.yaml"
    links = "links:\n  download: {hours: 24, max_uses: 3}\n"
    settings.write_text(links + "packages:\n  keep_hours: 48\n")
    assert load_package_keep(settings) == timedelta(hours=48)
    for bad in ("packages:\n  keep_hours: 12\n", "packages: {}\n", "packages:\n  keep_hours: x\n"):
        path = tmp_path / f"bad{abs(hash(bad))}.yaml"
        path.write_text(links + bad)
        with pytest.raises(ConfigError, match="keep_hours"):
            load_package_keep(path)


def test_the_command_prints_counts_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.fernet import Fernet

    from symfhir.cli import main

    monkeypatch.setenv("SYMFHIR_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("SYMFHIR_STORE_KEYS", Fernet.generate_key().decode())
    folder = tmp_path / "packages"
    folder.mkdir()
    old = package(folder, "t1", WRITTEN)
    as_of = (WRITTEN + 2 * DAY).isoformat()
    args = ["privacy", "purge", "--folder", str(folder), "--as-of", as_of]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "access packages deleted: 1" in out
    assert "links deleted: 0" in out
    assert old.name not in out and not old.exists()
    assert main(args) == 0
    assert "access packages deleted: 0" in capsys.readouterr().out
    assert main(["privacy", "purge", "--as-of", "2026-11-25T09:30:00"]) == 2
    assert "UTC offset" in capsys.readouterr().err
