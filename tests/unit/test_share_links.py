"""SMART Health Link records in the store: what is kept (hashes, sealed fields, ciphertext, no
key), the passcode cap under parallel guesses, expiry, tickets, access limits, revoke and stop,
the access log; files decoded with the independent decoder."""

from __future__ import annotations

import base64
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from symfhir.errors import LinkInactive, PasscodeRejected, SharingError
from symfhir.sharing import shl
from symfhir.sharing.link_records import token_hash
from symfhir.sharing.links import (
    links_of,
    open_manifest,
    open_single,
    purge_share_links,
    read_file,
    revoke_link,
    stop_links,
)
from symfhir.store import Store
from symfhir.store.tables import Base, FileTicket, ShareAccess, ShareFile, ShareLink
from tests import shl_decoder
from tests.unit.shl_packages import (
    LINKS,
    make_link,
    make_package,
    manifest_id,
    summary_bytes,
)

pytestmark = pytest.mark.unit

PASSCODE = "tulip-417"


def key_of(link) -> bytes:
    return shl_decoder.b64d(link.payload["key"])


def open_(store: Store, link, now: datetime, **kwargs):
    options = {"recipient": "Dr. Rivera's office", "passcode": None, "embedded_length_max": None}
    options.update(kwargs)
    return open_manifest(store, manifest_id(link), files_base=LINKS, now=now, **options)


def all_bytes(store: Store) -> bytes:
    """Every value of every store table, as bytes: what a stolen database gives away."""
    out = []
    with store.session(readonly=True) as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                for value in row:
                    out.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\x00".join(out)


def test_only_hashes_ciphertext_and_sealed_fields_are_kept(store: Store, now: datetime) -> None:
    link = make_link(store, now, make_package("client-7731", photos=1), passcode=PASSCODE)
    kept = all_bytes(store)
    mid = manifest_id(link)
    assert mid.encode() not in kept
    assert token_hash(mid).encode() in kept  # the id only as its SHA-256
    key = key_of(link)
    assert key not in kept and link.payload["key"].encode() not in kept  # the key: nowhere
    for secret in (b"client-7731", b"Rivera", b"1234567893", b"nurse1", PASSCODE.encode()):
        assert secret not in kept, secret
    with store.session(readonly=True) as session:
        row = session.execute(select(ShareLink)).scalar_one()
    assert row.passcode_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact_of(row: ShareFile) -> str:
    """A stored file's compact JWE, put together here from the kept parts (RFC 7516 §7.1)."""
    return f"{row.protected}..{b64(row.iv)}.{b64(row.ciphertext)}.{b64(row.tag)}"


def test_files_are_the_package_in_order_as_jwe_parts_under_the_links_key(
    store: Store, now: datetime
) -> None:
    package = make_package(photos=2)
    link = make_link(store, now, package)
    with store.session(readonly=True) as session:
        rows = session.execute(select(ShareFile).order_by(ShareFile.position)).scalars().all()
    assert [r.position for r in rows] == [0, 1, 2]
    headers, plains = [], []
    for row in rows:
        assert len(row.iv) == 12 and len(row.tag) == 16
        header, plain = shl_decoder.decrypt(compact_of(row), key_of(link))
        headers.append(header)
        plains.append(plain)
        assert row.size == len(compact_of(row))
    assert plains[2].startswith(b'{"resourceType": "Media", "id": "m1"')
    assert plains[0] == summary_bytes()
    assert headers[0]["zip"] == "DEF"  # the summary is deflated
    assert "zip" not in headers[1]  # a photo's base64 JPEG is not
    # Kept binary, not as base64url: a photo's ciphertext is exactly its plaintext's length.
    assert len(rows[2].ciphertext) == len(plains[2])
    assert len(rows[2].ciphertext) < rows[2].size * 0.76
    assert len({r.iv for r in rows}) == 3  # a fresh IV per file


def test_files_are_read_and_stored_one_at_a_time(store: Store, now: datetime) -> None:
    stored_before: list[int] = []

    def counting_read() -> bytes:
        with store.session(readonly=True) as session:
            stored_before.append(session.execute(select(func.count(ShareFile.id))).scalar_one())
        return b"{}"

    package = make_package(extra=[("a.json", counting_read), ("b.json", counting_read)])
    make_link(store, now, package)
    assert stored_before == [1, 2]  # each file is in the store before the next is read


def test_a_failed_read_leaves_no_half_made_link(store: Store, now: datetime) -> None:
    def broken() -> bytes:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        make_link(store, now, make_package(extra=[("bad.json", broken)]))
    with store.session(readonly=True) as session:
        assert session.execute(select(func.count(ShareLink.id))).scalar_one() == 0
        assert session.execute(select(func.count(ShareFile.id))).scalar_one() == 0


def test_the_new_link_carries_payload_shlink_viewer_and_qr(store: Store, now: datetime) -> None:
    link = make_link(store, now, passcode=PASSCODE, label="For Dr. Rivera")
    assert link.flags == "P" and link.payload["flag"] == "P"
    assert link.manifest_url.startswith(f"{LINKS}/shl/m/") and len(link.manifest_url) <= 128
    assert shl_decoder.parse(link.shlink) == link.payload
    assert link.viewer_url == f"{LINKS}/view#{link.shlink}"
    assert link.qr_png.startswith(b"\x89PNG") and link.qr_svg.startswith("<svg")
    assert link.payload["exp"] == int(link.expires_at.timestamp())
    assert len(link.link_id) == 16


def test_a_link_without_an_expiry_gets_the_default(store: Store, now: datetime) -> None:
    from symfhir.sharing.links import create_link

    link = create_link(
        store,
        make_package(),
        label=None,
        passcode=None,
        expires_at=None,
        max_accesses=None,
        single_file=False,
        created_by="Practitioner/nurse1",
        links_base=LINKS,
        viewer_base=LINKS + "/view",
        now=now,
        long_term=True,
    )
    assert link.expires_at == now + timedelta(days=30)
    assert link.flags == "L" and "label" not in link.payload


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"label": "x" * 81}, "label"),
        ({"passcode": "12345"}, "passcode"),
        ({"passcode": "x" * 129}, "passcode"),
        ({"passcode": PASSCODE, "single_file": True}, "flag"),
        ({"max_accesses": 0}, "max_accesses"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=None)}, "expires_at"),
        ({"links_base": "https://links.example.org/" + "x" * 60}, "links_base"),
    ],
)
def test_bad_options_are_refused_naming_the_field(
    store: Store, now: datetime, options: dict, field: str
) -> None:
    with pytest.raises(SharingError, match=rf"^{field}: "):
        make_link(store, now, **options)
    with store.session(readonly=True) as session:
        assert session.execute(select(func.count(ShareLink.id))).scalar_one() == 0


@pytest.mark.parametrize("days", [-1, 0, 366])
def test_expiry_must_be_ahead_and_within_a_year(store: Store, now: datetime, days: int) -> None:
    with pytest.raises(SharingError, match=r"^expires_at: "):
        make_link(store, now, expires_at=now + timedelta(days=days))


def test_a_single_file_link_carries_exactly_one_file(store: Store, now: datetime) -> None:
    with pytest.raises(SharingError, match=r"^single_file: .* has 2"):
        make_link(store, now, make_package(photos=1), single_file=True)
    link = make_link(store, now, single_file=True)
    assert link.flags == "U"
    parts, access = open_single(store, manifest_id(link), recipient="Dr. R", now=now)
    compact = b"".join(parts.compact_chunks()).decode()
    assert shl_decoder.decrypt(compact, key_of(link))[1] == summary_bytes()
    assert access.patient_id == "p1"


def test_manifest_embeds_up_to_the_asked_length_else_locations(store: Store, now: datetime) -> None:
    link = make_link(store, now, make_package(photos=1, photo_size=20000))
    with store.session(readonly=True) as session:
        small, big = session.execute(select(ShareFile.size).order_by(ShareFile.position)).scalars()
    access = open_(store, link, now, embedded_length_max=small)
    first, second = access.manifest["files"]
    assert (
        set(first) == {"contentType", "embedded"}
        and first["contentType"] == "application/fhir+json"
    )
    assert set(second) == {"contentType", "location"}
    assert second["location"].startswith(f"{LINKS}/shl/f/")
    ticket = second["location"].rsplit("/", 1)[1]
    served = read_file(store, ticket, now=now)
    assert served.compact_length == big == len(b"".join(served.compact_chunks()))
    assert shl_decoder.decrypt(first["embedded"], key_of(link))[1] == summary_bytes()
    # No length asked: the default (locations only); a huge one is capped (5 MiB > 20 KB: all).
    assert all("location" in f for f in open_(store, link, now).manifest["files"])
    huge = open_(store, link, now, embedded_length_max=10**12).manifest["files"]
    assert all("embedded" in f for f in huge)


def test_the_access_names_who_received_what(store: Store, now: datetime) -> None:
    link = make_link(store, now, make_package(photos=1))
    access = open_(store, link, now, recipient="Dr. Rivera (front desk)")
    assert access.patient_id == "p1" and access.consent_id == "c1"
    assert access.recipient.name == "Dr. Ada Rivera"
    assert access.recipient.reference == "Practitioner/doc1"
    assert access.types == ("Media", "Patient")
    assert access.recipient_text == "Dr. Rivera (front desk)"


def test_a_wrong_passcode_counts_down_to_the_lock(store: Store, now: datetime) -> None:
    link = make_link(store, now, passcode=PASSCODE)
    remaining = []
    for _ in range(5):
        with pytest.raises(PasscodeRejected) as caught:
            open_(store, link, now, passcode="wrong-one")
        remaining.append(caught.value.remaining)
    assert remaining == [4, 3, 2, 1, 0]
    with pytest.raises(LinkInactive):  # locked: even the right passcode gets nothing
        open_(store, link, now, passcode=PASSCODE)
    assert links_of(store, "p1", now=now)[0].status == "locked"


def test_a_right_passcode_gives_its_try_back(store: Store, now: datetime) -> None:
    link = make_link(store, now, passcode=PASSCODE)
    with pytest.raises(PasscodeRejected):
        open_(store, link, now, passcode="wrong-one")
    for _ in range(6):
        open_(store, link, now, passcode=PASSCODE)
    record = links_of(store, "p1", now=now)[0]
    assert record.failures == 1 and record.access_count == 6 and record.status == "active"


def test_a_missing_passcode_is_asked_for_but_not_counted(store: Store, now: datetime) -> None:
    link = make_link(store, now, passcode=PASSCODE)
    for _ in range(8):
        with pytest.raises(PasscodeRejected) as caught:
            open_(store, link, now, passcode=None)
        assert caught.value.remaining == 5
    assert open_(store, link, now, passcode=PASSCODE).manifest["files"]


def test_the_cap_holds_under_20_parallel_guesses(tmp_path, now: datetime) -> None:
    from cryptography.fernet import Fernet

    store = Store(f"sqlite:///{tmp_path / 'race.db'}", [Fernet.generate_key().decode()])
    link = make_link(store, now, passcode=PASSCODE)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def guess(n: int) -> None:
        start.wait()
        try:
            open_(store, link, now, passcode=f"guess-{n:04d}")
            result = "served"
        except PasscodeRejected:
            result = "401"
        except LinkInactive:
            result = "404"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("401") == 5
    assert outcomes.count("404") == 15 and "served" not in outcomes
    with store.session(readonly=True) as session:
        row = session.execute(select(ShareLink)).scalar_one()
        wrong = session.execute(
            select(func.count()).where(ShareAccess.outcome == "wrong-passcode")
        ).scalar_one()
    assert row.failures == 5 and wrong == 5
    with pytest.raises(LinkInactive):
        open_(store, link, now, passcode=PASSCODE)
    store.dispose()


def test_an_expired_link_gives_nothing(store: Store, now: datetime) -> None:
    link = make_link(store, now, expires_at=now + timedelta(hours=1))
    open_(store, link, now + timedelta(minutes=59))
    with pytest.raises(LinkInactive):
        open_(store, link, now + timedelta(hours=1))
    assert links_of(store, "p1", now=now + timedelta(hours=2))[0].status == "expired"


def test_tickets_live_their_time_and_not_after(store: Store, now: datetime) -> None:
    link = make_link(store, now)
    location = open_(store, link, now).manifest["files"][0]["location"]
    ticket = location.rsplit("/", 1)[1]
    assert read_file(store, ticket, now=now + timedelta(seconds=59))  # a retry within its time
    assert read_file(store, ticket, now=now + timedelta(seconds=30))
    for late in (60, 61, 3600):
        with pytest.raises(LinkInactive):
            read_file(store, ticket, now=now + timedelta(seconds=late))
    for bad in (ticket[:-1], ticket[:-1] + ("A" if ticket[-1] != "A" else "B"), "", "../x"):
        with pytest.raises(LinkInactive):
            read_file(store, bad, now=now)
    with store.session(readonly=True) as session:
        kept = session.execute(select(FileTicket.ticket_hash)).scalars().all()
    assert ticket not in kept and token_hash(ticket) in kept


def test_a_revoked_links_tickets_stop_at_once(store: Store, now: datetime) -> None:
    link = make_link(store, now)
    ticket = open_(store, link, now).manifest["files"][0]["location"].rsplit("/", 1)[1]
    revoke_link(store, "p1", link.link_id, reason="revoked by a practitioner", now=now)
    with pytest.raises(LinkInactive):
        read_file(store, ticket, now=now)
    with pytest.raises(LinkInactive):
        open_(store, link, now)
    record = links_of(store, "p1", now=now)[0]
    assert record.status == "revoked" and record.revoke_reason == "revoked by a practitioner"


def test_max_accesses_then_inactive_but_its_files_still_read(store: Store, now: datetime) -> None:
    link = make_link(store, now, max_accesses=2)
    open_(store, link, now)
    last = open_(store, link, now).manifest["files"][0]["location"].rsplit("/", 1)[1]
    with pytest.raises(LinkInactive):
        open_(store, link, now)
    assert read_file(store, last, now=now)  # the last access's file still downloads
    assert links_of(store, "p1", now=now)[0].status == "used up"


def test_unknown_and_truncated_ids_take_the_inactive_path(store: Store, now: datetime) -> None:
    link = make_link(store, now)
    revoke_link(store, "p1", link.link_id, reason="x", now=now)
    mid = manifest_id(link)
    for bad in (mid, mid[:-1], shl.new_manifest_id(), "", "x" * 500, "../../etc"):
        with pytest.raises(LinkInactive):
            open_manifest(
                store,
                bad,
                recipient="r",
                passcode=None,
                embedded_length_max=None,
                files_base=LINKS,
                now=now,
            )
    with store.session(readonly=True) as session:
        outcomes = session.execute(
            select(ShareAccess.link_pk.is_(None), ShareAccess.outcome).order_by(ShareAccess.id)
        ).all()
    # Each was looked up and logged alike: the revoked one against its link, the rest unknown.
    assert outcomes == [(False, "inactive")] + [(True, "unknown")] * 5


def test_revoking_needs_the_links_own_client(store: Store, now: datetime) -> None:
    link = make_link(store, now)
    with pytest.raises(LinkInactive, match="link_id"):
        revoke_link(store, "p2", link.link_id, reason="x", now=now)
    with pytest.raises(LinkInactive):
        revoke_link(store, "p1", "0" * 16, reason="x", now=now)
    open_(store, link, now)  # still active


def test_stop_links_stops_every_link_of_the_client_only(store: Store, now: datetime) -> None:
    mine = [make_link(store, now), make_link(store, now, passcode=PASSCODE)]
    theirs = make_link(store, now, make_package("p2"))
    assert stop_links(store, "p1", reason="consent withdrawn", now=now) == 2
    assert stop_links(store, "p1", reason="consent withdrawn", now=now) == 0
    for link in mine:
        with pytest.raises(LinkInactive):
            open_(store, link, now, passcode=PASSCODE)
    assert open_(store, theirs, now).patient_id == "p2"
    assert {r.revoke_reason for r in links_of(store, "p1", now=now)} == {"consent withdrawn"}


def test_a_withdrawn_consent_stops_the_clients_links(store: Store, now: datetime) -> None:
    first, second = make_link(store, now), make_link(store, now)
    seen = []

    def withdrawn(context) -> bool:
        seen.append(context.consent_id)
        return False

    with pytest.raises(LinkInactive):
        open_(store, first, now, still_allowed=withdrawn)
    assert seen == ["c1"]
    with pytest.raises(LinkInactive):
        open_(store, second, now)  # stopped too, without asking
    assert {r.status for r in links_of(store, "p1", now=now)} == {"revoked"}


def test_links_of_lists_newest_first_with_the_access_log(store: Store, now: datetime) -> None:
    old = make_link(store, now - timedelta(days=1), passcode=PASSCODE, label="older")
    new = make_link(store, now, label="newer", max_accesses=3)
    with pytest.raises(PasscodeRejected):
        open_(store, old, now, passcode="wrong-one", recipient="Someone")
    open_(store, old, now + timedelta(minutes=1), passcode=PASSCODE, recipient="Dr. Rivera")
    records = links_of(store, "p1", now=now)
    assert [r.label for r in records] == ["newer", "older"]
    assert [r.link_id for r in records] == [new.link_id, old.link_id]
    older = records[1]
    assert [(a.recipient, a.outcome) for a in older.accesses] == [
        ("Someone", "wrong-passcode"),
        ("Dr. Rivera", "ok"),
    ]
    assert older.passcode and older.failures == 1 and older.access_count == 1
    assert older.recipient.name == "Dr. Ada Rivera" and older.basis == "Consent/c1"
    assert records[0].max_accesses == 3 and records[0].accesses == ()
    assert links_of(store, "p2", now=now) == []


def test_purge_drops_dead_tickets_and_old_files_keeps_the_record(
    store: Store, now: datetime
) -> None:
    link = make_link(store, now, make_package(photos=1), expires_at=now + timedelta(hours=1))
    open_(store, link, now)
    with pytest.raises(LinkInactive):
        open_manifest(
            store,
            "x",
            recipient="r",
            passcode=None,
            embedded_length_max=None,
            files_base=LINKS,
            now=now,
        )
    assert purge_share_links(store, now=now + timedelta(days=1)) == 0  # files kept 30 days
    assert purge_share_links(store, now=now + timedelta(days=32)) == 2
    with store.session(readonly=True) as session:
        assert session.execute(select(func.count(FileTicket.id))).scalar_one() == 0
        unknown = select(func.count()).where(ShareAccess.link_pk.is_(None))
        assert session.execute(unknown).scalar_one() == 0
    record = links_of(store, "p1", now=now + timedelta(days=32))[0]
    assert record.status == "expired" and len(record.accesses) == 1


def test_memory_stays_flat_across_a_package_of_photos(store: Store, now: datetime) -> None:
    import tracemalloc

    def peak(photos: int) -> int:
        package = make_package(photos=photos, photo_size=2 * 1024 * 1024)
        tracemalloc.start()
        try:
            make_link(store, now, package)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one, six = peak(1), peak(6)
    assert six < one * 1.3, (one, six)  # one photo in memory at a time, whatever the count


def test_only_a_single_file_link_is_read_directly(store: Store, now: datetime) -> None:
    for link in (make_link(store, now), make_link(store, now, passcode=PASSCODE)):
        with pytest.raises(LinkInactive):
            open_single(store, manifest_id(link), recipient="r", now=now)
    with store.session(readonly=True) as session:
        outcomes = session.execute(select(ShareAccess.outcome)).scalars().all()
    assert outcomes == ["inactive", "inactive"]  # logged as any inactive link, nothing counted
    assert {r.access_count for r in links_of(store, "p1", now=now)} == {0}
