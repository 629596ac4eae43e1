"""The app's own store: tables made on first use, transactions, sealed fields, lookups, keys."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from symfhir.errors import ConfigError, StoreError
from symfhir.store import Store
from symfhir.store.tables import RateEvent

pytestmark = pytest.mark.unit

CHICAGO = ZoneInfo("America/Chicago")


def test_tables_are_created_on_first_use(tmp_path) -> None:
    path = tmp_path / "nested" / "symfhir.db"
    store = Store(f"sqlite:///{path}", [Fernet.generate_key().decode()])
    with store.session() as session:
        assert session.execute(select(RateEvent)).first() is None
    names = {
        row[0]
        for row in sqlite3.connect(path).execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
        )
    }
    assert {"verification_codes", "rate_events", "links"} <= names
    store.dispose()


def test_a_failed_operation_writes_nothing(store: Store, now: datetime) -> None:
    with pytest.raises(RuntimeError), store.session() as session:
        session.add(RateEvent(bucket="address", key_lookup="k", at=now))
        session.flush()
        raise RuntimeError("crash halfway")
    with store.session() as session:
        assert session.execute(select(RateEvent)).first() is None


def test_times_are_kept_as_instants(store: Store, now: datetime) -> None:
    with store.session() as session:
        session.add(RateEvent(bucket="b", key_lookup="k", at=now))
    with store.session() as session:
        at = session.execute(select(RateEvent.at)).scalar_one()
    assert at == now and at.tzinfo is not None
    assert at.astimezone(UTC) == datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


def test_a_naive_time_is_refused(store: Store) -> None:
    with pytest.raises(StoreError), store.session() as session:
        session.add(RateEvent(bucket="b", key_lookup="k", at=datetime(2026, 11, 25)))


def test_sealed_fields_are_not_in_clear_and_open_again(store: Store, tmp_path) -> None:
    sealed = store.seal("ann.lee@example.com")
    assert b"example.com" not in sealed
    assert store.unseal(sealed) == "ann.lee@example.com"


def test_rotation_new_key_first_old_data_still_opens(tmp_path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = Store(f"sqlite:///{tmp_path / 'a.db'}", [old])
    after = Store(f"sqlite:///{tmp_path / 'a.db'}", [new, old])
    sealed = before.seal("+13375550101")
    assert after.unseal(sealed) == "+13375550101"
    # The lookup key comes from the last (longest kept) key: lookups survive the rotation.
    assert after.lookup("p", "x") == before.lookup("p", "x")
    dropped = Store(f"sqlite:///{tmp_path / 'a.db'}", [new])
    with pytest.raises(StoreError, match="cannot be opened"):
        dropped.unseal(sealed)
    for s in (before, after, dropped):
        s.dispose()


def test_lookup_is_keyed_and_separated_by_purpose(store: Store, tmp_path) -> None:
    other = Store(f"sqlite:///{tmp_path / 'b.db'}", [Fernet.generate_key().decode()])
    value = "ann.lee@example.com"
    assert store.lookup("address", value) == store.lookup("address", value)
    assert store.lookup("address", value) != store.lookup("target", value)
    assert store.lookup("address", value) != other.lookup("address", value)
    assert value not in store.lookup("address", value)
    other.dispose()


@pytest.mark.parametrize("keys", [[], ["not-a-key"]])
def test_bad_keys_are_a_config_error(keys, tmp_path) -> None:
    with pytest.raises(ConfigError, match="SYMFHIR_STORE_KEYS"):
        Store(f"sqlite:///{tmp_path / 'c.db'}", keys)


def test_from_env(tmp_path) -> None:
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'env.db'}"
    store = Store.from_env({"SYMFHIR_STORE_URL": url, "SYMFHIR_STORE_KEYS": f" {key} ,"})
    assert store.kind == "sqlite" and str(store.url) == url
    with pytest.raises(ConfigError, match="SYMFHIR_STORE_KEYS"):
        Store.from_env({"SYMFHIR_STORE_URL": url})
    with pytest.raises(ConfigError, match="SYMFHIR_STORE_URL"):
        Store.from_env({"SYMFHIR_STORE_URL": "::nonsense::", "SYMFHIR_STORE_KEYS": key})
    store.dispose()


def test_an_unusable_database_is_a_store_error_without_values(tmp_path) -> None:
    key = Fernet.generate_key().decode()
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot make its folder"):
        Store(f"sqlite:///{tmp_path / 'file' / 'x.db'}", [key])
    (tmp_path / "a-folder.db").mkdir()
    store = Store(f"sqlite:///{tmp_path / 'a-folder.db'}", [key])
    with pytest.raises(StoreError) as caught, store.session():
        pass
    assert str(caught.value).startswith("the sqlite store: ")
    assert "a-folder" not in str(caught.value)
    store.dispose()


def test_exclusive_transactions_do_not_overlap(store: Store, now: datetime) -> None:
    import threading

    inside = []
    overlaps = []
    lock = threading.Lock()

    def work(i: int) -> None:
        with store.exclusive("test") as session:
            with lock:
                inside.append(i)
                if len(inside) > 1:
                    overlaps.append(i)
            session.add(RateEvent(bucket="b", key_lookup=str(i), at=now + timedelta(seconds=i)))
            session.flush()
            with lock:
                inside.remove(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    with store.session() as session:
        assert len(session.execute(select(RateEvent)).all()) == 8


def test_memory_database_works(now: datetime) -> None:
    store = Store("sqlite://", [Fernet.generate_key().decode()])
    with store.session() as session:
        session.add(RateEvent(bucket="b", key_lookup="k", at=now.astimezone(CHICAGO)))
    with store.session() as session:
        assert session.execute(select(RateEvent.bucket)).scalar_one() == "b"
    store.dispose()


def test_a_development_store_may_make_its_key(tmp_path, caplog) -> None:
    env = {"SYMFHIR_STORE_URL": f"sqlite:///{tmp_path / 'dev.db'}"}
    store = Store.from_env(env, generate_key=True)
    assert store.unseal(store.seal("x")) == "x"
    assert "SYMFHIR_STORE_KEYS not set" in caplog.text
    store.dispose()
