"""One-time codes: format, hashing, expiry, five tries, replay, rate limits, parallel requests."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from symfhir.errors import RateLimited, RecordError
from symfhir.privacy.portal_settings import CodeSettings, RateLimit, load_code_settings
from symfhir.privacy.verification import check_code, is_verified, issue_code, purge_codes
from symfhir.store import Store
from symfhir.store.tables import RateEvent, VerificationCode

pytestmark = pytest.mark.unit

EMAIL = "Ann.Lee@Example.com"
PHONE = "(337) 555-0101"
REF = "portal-req-1"


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def test_settings_come_from_the_privacy_mapping() -> None:
    settings = load_code_settings()
    assert settings.digits >= 6
    assert settings.lifetime == timedelta(minutes=15)
    assert settings.max_tries == 5
    assert settings.per_address == RateLimit(5, timedelta(hours=1))
    assert settings.per_requester == RateLimit(10, timedelta(days=1))


def test_a_code_is_six_digits_and_kept_only_as_a_hash(store: Store, now: datetime) -> None:
    code = issue_code(store, REF, "email", EMAIL, now=now)
    assert len(code) == 6 and code.isdigit()
    with store.session() as session:
        row = session.execute(select(VerificationCode)).scalar_one()
        assert code.encode() not in row.code_hash and len(row.salt) == 16
        assert b"example" not in row.address_sealed.lower()
        assert store.unseal(row.address_sealed) == "ann.lee@example.com"
        assert "example" not in row.address_lookup


def test_codes_are_random(store: Store, now: datetime) -> None:
    codes = {issue_code(store, f"r{i}", "email", f"p{i}@example.com", now=now) for i in range(8)}
    assert len(codes) > 1


def test_the_right_code_verifies_once(store: Store, now: datetime) -> None:
    code = issue_code(store, REF, "email", EMAIL, now=now)
    assert not is_verified(store, REF, EMAIL)
    # The address as typed another way is the same address; spaces in the code are forgiven.
    assert check_code(store, REF, " ann.lee@EXAMPLE.com", f"{code[:3]} {code[3:]}", now=now)
    assert is_verified(store, REF, EMAIL)
    assert not check_code(store, REF, EMAIL, code, now=now + timedelta(seconds=1)), "replay"


def test_a_phone_code(store: Store, now: datetime) -> None:
    code = issue_code(store, REF, "sms", PHONE, now=now)
    assert check_code(store, REF, "+1 337-555-0101", code, now=now)
    assert not is_verified(store, REF, EMAIL)


def test_a_code_is_bound_to_its_request_and_address(store: Store, now: datetime) -> None:
    code = issue_code(store, REF, "email", EMAIL, now=now)
    assert not check_code(store, "another-request", EMAIL, code, now=now)
    assert not check_code(store, REF, "someone@example.com", code, now=now)
    assert check_code(store, REF, EMAIL, code, now=now)


def test_a_code_expires(store: Store, now: datetime) -> None:
    code = issue_code(store, REF, "email", EMAIL, now=now)
    assert not check_code(store, REF, EMAIL, code, now=now + timedelta(minutes=15))
    fresh = issue_code(store, REF, "email", EMAIL, now=now + timedelta(minutes=16))
    assert check_code(store, REF, EMAIL, fresh, now=now + timedelta(minutes=30))


def test_five_tries_then_the_code_is_dead(store: Store, now: datetime) -> None:
    code = issue_code(store, REF, "email", EMAIL, now=now)
    for _ in range(4):
        assert not check_code(store, REF, EMAIL, wrong(code), now=now)
    assert check_code(store, REF, EMAIL, code, now=now), "the fifth try may be right"
    code = issue_code(store, "req-2", "email", EMAIL, now=now)
    for _ in range(5):
        assert not check_code(store, "req-2", EMAIL, wrong(code), now=now)
    assert not check_code(store, "req-2", EMAIL, code, now=now), "no sixth try"


@pytest.mark.parametrize("junk", ["", "12345", "1234567", "abcdef", "12345\u0661"])
def test_malformed_codes_fail_and_use_a_try(store: Store, now: datetime, junk: str) -> None:
    code = issue_code(store, REF, "email", EMAIL, now=now)
    assert not check_code(store, REF, EMAIL, junk, now=now)
    with store.session() as session:
        assert session.execute(select(VerificationCode.tries)).scalar_one() == 1
    assert check_code(store, REF, EMAIL, code, now=now)


def test_a_new_code_replaces_the_old(store: Store, now: datetime) -> None:
    old = issue_code(store, REF, "email", EMAIL, now=now)
    new = issue_code(store, REF, "email", EMAIL, now=now + timedelta(minutes=1))
    if old != new:
        assert not check_code(store, REF, EMAIL, old, now=now + timedelta(minutes=2))
    assert check_code(store, REF, EMAIL, new, now=now + timedelta(minutes=2))


def test_unknown_address_or_request_is_simply_false(store: Store, now: datetime) -> None:
    assert not check_code(store, REF, EMAIL, "123456", now=now)
    assert not check_code(store, REF, "not an address", "123456", now=now)
    assert not is_verified(store, REF, "not an address")


@pytest.mark.parametrize(
    ("channel", "address"),
    [("email", "not-an-email"), ("sms", "12"), ("sms", "call me"), ("fax", "x@example.com")],
)
def test_bad_addresses_are_refused_with_a_reason(store, now, channel, address) -> None:
    with pytest.raises(RecordError) as caught:
        issue_code(store, REF, channel, address, now=now)
    assert address not in str(caught.value)


def test_five_codes_per_address_per_hour(store: Store, now: datetime) -> None:
    for i in range(5):
        issue_code(store, f"req-{i}", "email", EMAIL, now=now + timedelta(minutes=i))
    with pytest.raises(RateLimited) as caught:
        issue_code(store, "req-9", "email", "ann.lee@example.COM", now=now + timedelta(minutes=10))
    assert caught.value.scope == "address"
    # The first code leaves the hour at now + 60 min: 50 minutes from the refused ask.
    assert caught.value.retry_after == 50 * 60
    assert "example" not in str(caught.value)
    # A refusal is not counted: after the wait one more may be asked.
    issue_code(store, "req-9", "email", EMAIL, now=now + timedelta(minutes=60, seconds=1))
    # Another address is not limited by this one.
    issue_code(store, "req-10", "email", "bo@example.com", now=now + timedelta(minutes=10))


def test_ten_codes_per_requester_per_day(store: Store, now: datetime) -> None:
    for i in range(10):
        issue_code(
            store, REF, "email", f"a{i}@example.com", now=now + timedelta(hours=i), requester="k"
        )
    with pytest.raises(RateLimited) as caught:
        issue_code(store, "other-ref", "sms", PHONE, now=now + timedelta(hours=11), requester="k")
    assert caught.value.scope == "requester"
    assert caught.value.retry_after == 13 * 3600
    # By default the requester is the request itself.
    for i in range(10):
        issue_code(store, "req-x", "email", f"b{i}@example.com", now=now + timedelta(minutes=i))
    with pytest.raises(RateLimited):
        issue_code(store, "req-x", "sms", PHONE, now=now + timedelta(minutes=11))


def test_purge_removes_expired_codes_and_old_counts(store: Store, now: datetime) -> None:
    issue_code(store, REF, "email", EMAIL, now=now)
    later = now + timedelta(days=1, minutes=1)
    live = issue_code(store, "req-2", "email", "bo@example.com", now=later)
    assert purge_codes(store, now=later) == 3  # one code, its two rate events
    with store.session() as session:
        assert len(session.execute(select(RateEvent)).all()) == 2
    assert check_code(store, "req-2", "bo@example.com", live, now=later)


def test_parallel_guesses_never_get_more_than_five_tries(store: Store, now: datetime) -> None:
    code = issue_code(store, REF, "email", EMAIL, now=now)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def guess(candidate: str) -> None:
        start.wait()
        ok = check_code(store, REF, EMAIL, candidate, now=now)
        with lock:
            results.append(ok)

    # Nineteen wrong guesses and the right one, all at once: at most five are tried at all.
    candidates = [wrong(code)] * 19 + [code]
    threads = [threading.Thread(target=guess, args=(c,)) for c in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    with store.session() as session:
        assert session.execute(select(VerificationCode.tries)).scalar_one() == 5
    assert results.count(True) <= 1


def test_parallel_right_answers_verify_once(store: Store, now: datetime) -> None:
    code = issue_code(store, REF, "email", EMAIL, now=now)
    results: list[bool] = []
    start = threading.Barrier(5)

    def answer() -> None:
        start.wait()
        results.append(check_code(store, REF, EMAIL, code, now=now))

    threads = [threading.Thread(target=answer) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


def test_parallel_issues_never_pass_the_address_cap(store: Store, now: datetime) -> None:
    settings = CodeSettings(
        digits=6,
        lifetime=timedelta(minutes=15),
        max_tries=5,
        per_address=RateLimit(5, timedelta(hours=1)),
        per_requester=RateLimit(100, timedelta(days=1)),
    )
    issued: list[str] = []
    refused: list[int] = []
    start = threading.Barrier(16)

    def ask(i: int) -> None:
        start.wait()
        try:
            issued.append(issue_code(store, f"r{i}", "sms", PHONE, now=now, settings=settings))
        except RateLimited as exc:
            refused.append(exc.retry_after)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(issued) == 5 and len(refused) == 11
    assert set(refused) == {3600}
