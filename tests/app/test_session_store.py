"""Server-side sessions: encryption at rest, key rotation, expiry."""

from __future__ import annotations

import os
import threading
import time

import pytest
from cryptography.fernet import Fernet

from smart_app.session_store import FileSessionStore, new_session_id
from symfhir.errors import ConfigError

pytestmark = pytest.mark.unit


def test_session_files_hold_no_token_text(launched, app):
    directory = app.extensions["symfhir_sessions"].directory
    files = list(directory.glob("*.session"))
    assert files
    for path in files:
        raw = path.read_bytes()
        assert b"ACCESS-" not in raw and b"REFRESH-" not in raw and b"patient" not in raw
    # ...but the app can read them back.
    assert launched.get("/").status_code == 200


def test_store_round_trip_and_rotation(tmp_path):
    old = Fernet.generate_key().decode()
    store = FileSessionStore(tmp_path, [old], idle=60, max_age=600)
    sid = new_session_id()
    store.save(sid, {"ctx": {"token": {"access_token": "secret"}}})
    assert store.load(sid)["ctx"]["token"]["access_token"] == "secret"

    new = Fernet.generate_key().decode()
    rotated = FileSessionStore(tmp_path, [new, old], idle=60, max_age=600)
    assert rotated.load(sid) is not None  # the old key still decrypts
    assert rotated.rotate() == 1
    only_new = FileSessionStore(tmp_path, [new], idle=60, max_age=600)
    assert only_new.load(sid)["ctx"]["token"]["access_token"] == "secret"


def test_unknown_key_loses_the_session(tmp_path):
    store = FileSessionStore(tmp_path, [Fernet.generate_key().decode()], idle=60, max_age=600)
    sid = new_session_id()
    store.save(sid, {"a": 1})
    other = FileSessionStore(tmp_path, [Fernet.generate_key().decode()], idle=60, max_age=600)
    assert other.load(sid) is None
    assert not list(tmp_path.glob("*.session"))


def test_sessions_expire(tmp_path, monkeypatch):
    store = FileSessionStore(tmp_path, [Fernet.generate_key().decode()], idle=60, max_age=600)
    sid = new_session_id()
    store.save(sid, {"a": 1, "_created": time.time() - 601})
    assert store.load(sid) is None  # older than max_age


@pytest.mark.parametrize("sid", ["../../etc/passwd", "short", "", "a" * 200])
def test_bad_session_ids_are_ignored(tmp_path, sid):
    store = FileSessionStore(tmp_path, [Fernet.generate_key().decode()], idle=60, max_age=600)
    assert store.load(sid) is None


def test_bad_fernet_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        FileSessionStore(tmp_path, ["not-a-key"], idle=60, max_age=600)


def test_tampered_cookie_gets_a_fresh_session(client):
    client.set_cookie("symfhir_session", "x" * 43)
    assert client.get("/").status_code == 401


def test_idle_sessions_expire(tmp_path, monkeypatch):
    store = FileSessionStore(tmp_path, [Fernet.generate_key().decode()], idle=60, max_age=6000)
    sid = new_session_id()
    store.save(sid, {"a": 1})
    assert store.load(sid) == {"a": 1, "_created": store.load(sid)["_created"]}
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.load(sid) is None


def test_concurrent_saves_of_one_session_all_succeed(tmp_path):
    """A page's style sheet and images arrive together: every save must land, none fail."""
    store = FileSessionStore(tmp_path, [Fernet.generate_key().decode()], idle=60, max_age=600)
    sid = new_session_id()
    errors: list[BaseException] = []

    def save(n: int) -> None:
        try:
            for i in range(40):
                store.save(sid, {"writer": n, "i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.load(sid)["i"] == 39
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{sid}.session"]  # no temp left


def test_an_unchanged_request_restarts_the_idle_clock_without_rewriting(tmp_path):
    store = FileSessionStore(tmp_path, [Fernet.generate_key().decode()], idle=60, max_age=6000)
    sid = new_session_id()
    store.save(sid, {"token": "new"})
    path = tmp_path / f"{sid}.session"
    content = path.read_bytes()
    long_ago = time.time() - 100
    os.utime(path, (long_ago, long_ago))  # last request 100 s ago: past the idle limit...
    store.touch(sid)  # ...but this request restarts the clock
    assert path.read_bytes() == content
    assert store.load(sid)["token"] == "new"
    os.utime(path, (long_ago, long_ago))
    assert store.load(sid) is None  # no touch: expired, and the file is gone
    assert not path.exists()
    store.touch(sid)  # an ended session: nothing to do, no error


def test_a_request_that_changes_nothing_does_not_overwrite_the_session(launched, app, monkeypatch):
    """E.g. an image request that read the session before a concurrent token refresh must
    not restore the old token when it ends."""
    store = app.session_interface.store
    (path,) = store.directory.glob("*.session")
    sid = path.name.removesuffix(".session")
    stale = store.load(sid)  # what the slow request read when it started
    store.save(sid, {**stale, "marker": "written by another request meanwhile"})
    monkeypatch.setattr(store, "load", lambda _sid: dict(stale))
    assert launched.get("/ehr-style.css").status_code == 200
    monkeypatch.undo()
    assert store.load(sid)["marker"] == "written by another request meanwhile"


def _store(tmp_path, **options) -> FileSessionStore:
    return FileSessionStore(
        tmp_path, [Fernet.generate_key().decode()], idle=60, max_age=600, **options
    )


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_pending_sessions_are_capped_oldest_evicted_first(tmp_path):
    store = _store(tmp_path, max_pending=3)
    sids = [new_session_id() for _ in range(5)]
    for age, sid in zip((40, 30, 20), sids[:3], strict=True):
        store.save(sid, {"launches": {}}, pending=True)
        _age(tmp_path / f"{sid}.pending", age)
    signed_in = [new_session_id() for _ in range(5)]
    for sid in signed_in:
        store.save(sid, {"ctx": {}})
    store.save(sids[3], {"launches": {}}, pending=True)
    assert store.load(sids[0]) is None  # the oldest pending launch made room
    assert all(store.load(sid) is not None for sid in sids[1:4])
    store.save(sids[4], {"launches": {}}, pending=True)
    assert store.load(sids[1]) is None
    assert len(list(tmp_path.glob("*.pending"))) == 3
    # Signed-in sessions are neither counted nor evicted.
    assert all(store.load(sid) is not None for sid in signed_in)
    # Saving an existing pending session again evicts nothing.
    store.save(sids[4], {"launches": {"s": 1}}, pending=True)
    assert all(store.load(sid) is not None for sid in sids[2:])


def test_the_cap_evicts_expired_pending_sessions_before_live_ones(tmp_path):
    store = _store(tmp_path, max_pending=2)
    live, dead = new_session_id(), new_session_id()
    store.save(live, {"launches": {}}, pending=True)
    _age(tmp_path / f"{live}.pending", 30)
    store.save(dead, {"launches": {}}, pending=True)
    _age(tmp_path / f"{dead}.pending", 61)  # idle past the limit, never read again
    store.save(new_session_id(), {"launches": {}}, pending=True)
    assert store.load(live) is not None
    assert not (tmp_path / f"{dead}.pending").exists()


def test_a_session_moves_between_pending_and_signed_in(tmp_path):
    store = _store(tmp_path)
    sid = new_session_id()
    store.save(sid, {"launches": {}}, pending=True)
    store.save(sid, {"ctx": {"patient": "p1"}})
    assert [p.name for p in tmp_path.iterdir()] == [f"{sid}.session"]
    assert store.load(sid)["ctx"] == {"patient": "p1"}
    store.delete(sid)
    assert list(tmp_path.iterdir()) == []


def test_expired_sessions_are_swept_without_being_read(tmp_path, monkeypatch):
    store = _store(tmp_path, sweep_interval=60)
    old, pending, fresh = new_session_id(), new_session_id(), new_session_id()
    store.save(old, {"ctx": {}})
    store.save(pending, {"launches": {}}, pending=True)
    _age(tmp_path / f"{old}.session", 61)
    _age(tmp_path / f"{pending}.pending", 61)
    crashed = tmp_path / f".{old}.abc.tmp"
    crashed.write_bytes(b"half a write")
    _age(crashed, 61)

    store.save(fresh, {"ctx": {}})  # within the interval: no sweep yet
    assert (tmp_path / f"{old}.session").exists()

    later = time.monotonic() + 61
    monkeypatch.setattr(time, "monotonic", lambda: later)
    store.save(fresh, {"ctx": {"n": 2}})  # the interval has passed: this save sweeps
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{fresh}.session"]
    assert store.load(fresh)["ctx"] == {"n": 2}


def test_rotation_covers_pending_sessions(tmp_path):
    old = Fernet.generate_key().decode()
    store = FileSessionStore(tmp_path, [old], idle=60, max_age=600)
    sid = new_session_id()
    store.save(sid, {"launches": {}}, pending=True)
    new = Fernet.generate_key().decode()
    assert FileSessionStore(tmp_path, [new, old], idle=60, max_age=600).rotate() == 1
    assert FileSessionStore(tmp_path, [new], idle=60, max_age=600).load(sid) is not None


def test_launches_without_a_cookie_cannot_fill_the_disk(fake_ehr, tmp_path, token_keys):
    from urllib.parse import urlencode

    from smart_app import create_app

    app = create_app(
        {
            "SYMFHIR_TRUSTED_ISS": [fake_ehr.iss],
            "SYMFHIR_TOKEN_KEYS": token_keys,
            "SYMFHIR_SESSION_DIR": str(tmp_path / "sessions"),
            "SYMFHIR_MAX_PENDING_SESSIONS": 3,
        }
    )
    for _ in range(8):  # each a new browser (or a script that drops the cookie)
        response = app.test_client().get("/launch?" + urlencode({"iss": fake_ehr.iss}))
        assert response.status_code == 302
    directory = tmp_path / "sessions"
    assert len(list(directory.glob("*.pending"))) == 3
    assert list(directory.glob("*.session")) == []
