"""Status-page and download links: unguessable, stored hashed, expired/revoked/used-up/tampered
tokens refused, use counts that hold under parallel opens."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from symfhir.errors import ConfigError
from symfhir.privacy.links import create_link, resolve_link, revoke_link, revoke_links
from symfhir.store import Store
from symfhir.store.tables import Link

pytestmark = pytest.mark.unit

TARGET = "Task/privacy-123"


def tamper(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def test_a_token_has_256_bits_and_only_its_hash_is_kept(store: Store, now: datetime) -> None:
    token = create_link(store, "status", TARGET, now=now)
    assert len(token) == 43  # 32 random bytes, base64url without padding
    with store.session() as session:
        row = session.execute(select(Link)).scalar_one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row.token_hash and TARGET.encode() not in row.target_sealed
    assert resolve_link(store, token, now=now) == TARGET


def test_tokens_are_unique(store: Store, now: datetime) -> None:
    tokens = {create_link(store, "status", TARGET, now=now) for _ in range(20)}
    assert len(tokens) == 20


def test_kind_settings_apply_by_default(store: Store, now: datetime) -> None:
    create_link(store, "download", "exports/p1.zip", now=now)
    create_link(store, "status", TARGET, now=now)
    with store.session() as session:
        rows = {r.kind: r for r in session.execute(select(Link)).scalars()}
    assert rows["download"].expires_at - rows["download"].created_at == timedelta(hours=24)
    assert rows["download"].max_uses == 3
    assert rows["status"].expires_at - rows["status"].created_at == timedelta(days=90)
    assert rows["status"].max_uses is None


def test_an_unlisted_kind_is_refused(store: Store, now: datetime) -> None:
    with pytest.raises(ConfigError, match="no link kind"):
        create_link(store, "anything", TARGET, now=now)


@pytest.mark.parametrize(("ttl", "uses"), [(timedelta(0), 1), (timedelta(hours=1), 0)])
def test_a_link_needs_life_and_a_use(store: Store, now: datetime, ttl, uses) -> None:
    with pytest.raises(ValueError):
        create_link(store, "download", TARGET, now=now, ttl=ttl, max_uses=uses)


def test_expired_links_are_refused(store: Store, now: datetime) -> None:
    token = create_link(store, "download", TARGET, now=now, ttl=timedelta(hours=1))
    assert resolve_link(store, token, now=now + timedelta(minutes=59)) == TARGET
    assert resolve_link(store, token, now=now + timedelta(hours=1)) is None


def test_uses_are_counted(store: Store, now: datetime) -> None:
    token = create_link(store, "download", TARGET, now=now, max_uses=2)
    assert resolve_link(store, token, now=now) == TARGET
    assert resolve_link(store, token, now=now) == TARGET
    assert resolve_link(store, token, now=now) is None
    unlimited = create_link(store, "status", TARGET, now=now)
    for _ in range(10):
        assert resolve_link(store, unlimited, now=now) == TARGET


@pytest.mark.parametrize(
    "bad",
    ["", "short", "x" * 43, "a" * 200, "../../etc/passwd", None, "é" * 43],
)
def test_junk_tokens_are_refused(store: Store, now: datetime, bad) -> None:
    create_link(store, "status", TARGET, now=now)
    assert resolve_link(store, bad, now=now) is None


def test_a_tampered_token_is_refused(store: Store, now: datetime) -> None:
    token = create_link(store, "status", TARGET, now=now)
    assert resolve_link(store, tamper(token), now=now) is None
    assert resolve_link(store, token.upper(), now=now) is None
    assert resolve_link(store, token, now=now) == TARGET


def test_a_link_of_another_kind_is_refused(store: Store, now: datetime) -> None:
    token = create_link(store, "status", TARGET, now=now)
    assert resolve_link(store, token, now=now, kind="download") is None
    assert resolve_link(store, token, now=now, kind="status") == TARGET


def test_revoked_links_are_refused(store: Store, now: datetime) -> None:
    one = create_link(store, "download", "exports/a.zip", now=now)
    two = create_link(store, "download", "exports/b.zip", now=now)
    three = create_link(store, "download", "exports/b.zip", now=now)
    keep = create_link(store, "status", "exports/b.zip", now=now)
    assert revoke_link(store, one, now=now)
    assert not revoke_link(store, one, now=now)
    assert not revoke_link(store, "junk", now=now)
    assert revoke_links(store, "download", "exports/b.zip", now=now) == 2
    for token in (one, two, three):
        assert resolve_link(store, token, now=now) is None
    assert resolve_link(store, keep, now=now) == "exports/b.zip"


def test_parallel_opens_never_pass_max_uses(store: Store, now: datetime) -> None:
    token = create_link(store, "download", TARGET, now=now, max_uses=3)
    results: list[str | None] = []
    start = threading.Barrier(12)

    def open_link() -> None:
        start.wait()
        results.append(resolve_link(store, token, now=now))

    threads = [threading.Thread(target=open_link) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(TARGET) == 3 and results.count(None) == 9


def test_purge_removes_long_dead_links_only(store: Store, now: datetime) -> None:
    from symfhir.privacy.links import purge_links

    old = create_link(store, "download", "a", now=now - timedelta(days=40))
    revoked = create_link(store, "status", "b", now=now - timedelta(days=40))
    revoke_link(store, revoked, now=now - timedelta(days=31))
    recent = create_link(store, "download", "c", now=now - timedelta(days=2))
    live = create_link(store, "status", "d", now=now)
    assert purge_links(store, now=now) == 2
    assert resolve_link(store, old, now=now) is None
    assert resolve_link(store, live, now=now) == "d"
    with store.session() as session:
        assert len(session.execute(select(Link)).all()) == 2
    assert resolve_link(store, recent, now=now) is None
