"""Benchmark SMART Health Links: the manifest endpoint under 50 concurrent requests,
encrypting a 100 MB package, and serving its files.

(a) The link service (``smart_app.links``) under gunicorn as ``scripts/serve links`` runs it
(2 workers x 1 thread; ``--workers``/``--threads`` to compare) over a SQLite store file, with
an in-memory FHIR client (the consent re-check answers at once and the disclosure AuditEvent
is kept in memory: the FHIR server's own time is not app time). 50 clients keep one manifest
request each in flight; the app time of each request is gunicorn's (from the worker taking it
to the answer, without the wait in the listen queue), and the clients' own latency is printed
beside it. Links without a passcode, then links with one (each request then runs one
Argon2id check at OWASP's parameters, which takes a core for tens of milliseconds: on a
2-core machine that is the honest floor under load, printed as measured). The passcode run
mixes right and wrong passcodes and a brute-forced link, then checks the exact counts: every
wrong one got 401, every right one 200, each link's failures are its wrong ones, the
brute-forced link stopped at 5. Run with SQLite's ``synchronous=FULL`` (as the store ships)
and ``NORMAL`` (WAL's usual: a commit then waits for no fsync). Goal: p95 under 50 ms.

(b) A 100 MB package (a summary and photos: Media JSON with base64 images, 5 MB each),
encrypted in one run by raw AES-256-GCM (``cryptography``) and by our encryption step (what
``create_link`` does to each file: a fresh IV, DEFLATE for the JSON documents, AES-GCM, the
JWE's binary parts as the store keeps them), side by side with their ratio, and the former
step (a whole compact JWE by joserfc) for comparison; ``create_link`` with its SQLite writes
for information. Then ``create_link`` on the whole package and on a one-photo package under
tracemalloc: the peaks should be alike (one file in memory at a time). Goal: at least half raw
AES-GCM's speed, memory flat.

(c) Apart from encryption: serving the stored parts as compact JWE, streamed base64url a
chunk at a time (``GET /shl/f/<ticket>``): the chunks alone, the app in-process, and the
service under gunicorn over loopback HTTP; and the peak memory of streaming one photo.

    python benchmarks/bench_sharing_links.py [--concurrency 50] [--rounds 6] [--mb 100]
        [--sync FULL NORMAL] [--workers 2] [--threads 1] [--skip-manifest]
        [--skip-encryption]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwe
from joserfc.jwk import OctKey
from sqlalchemy import func, select

from smart_app.links import create_app
from symfhir.sharing import shl
from symfhir.sharing.gate import Recipient, SharePlan
from symfhir.sharing.link_records import passcode_hasher
from symfhir.sharing.link_settings import Window, load_link_settings
from symfhir.sharing.links import NewLink, create_link, encrypt_file
from symfhir.sharing.package import SharedFile, SharePackage
from symfhir.store import Store
from symfhir.store.tables import ShareAccess, ShareLink

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC)
FHIR_JSON = "application/fhir+json"
PASSCODE = "bench-passcode"
MB = 1024 * 1024


@dataclass
class MemoryFhir:
    """The service's FHIR client, in memory: the AuditEvents it was given."""

    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, resource: dict[str, Any], if_none_exist: str | None = None) -> None:
        with self.lock:
            self.events.append(resource)

    def close(self) -> None:
        pass


def package(patient: str, files: list[tuple[str, Callable[[], bytes]]]) -> SharePackage:
    plan = SharePlan(
        patient_id=patient,
        basis="Consent/bench",
        recipient=Recipient("Practitioner/bench", "Dr. Bench"),
        scopes=frozenset({"summary", "photos"}),
        types=frozenset({"Patient", "Media"}),
        photos=True,
        start=None,
        end=None,
    )
    shared = tuple(SharedFile(name, FHIR_JSON, read) for name, read in files)
    return SharePackage(plan=plan, files=shared, counts={"Patient": 1, "Media": 1}, photos=1)


def summary() -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": "document", "entry": []}).encode()


def make(store: Store, patient: str, passcode: str | None) -> NewLink:
    small = package(patient, [("patient-summary.json", summary)])
    return create_link(
        store,
        small,
        label="bench",
        passcode=passcode,
        expires_at=NOW + timedelta(days=1),
        max_accesses=None,
        single_file=False,
        created_by="Practitioner/bench",
        links_base="http://localhost:5300",
        viewer_base="http://localhost:5300/view",
        now=NOW,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def service_app(sync: str = "FULL", store: Store | None = None) -> Any:
    """The link service as gunicorn runs it here (``bench_sharing_links:service_app()``): the
    store of SYMFHIR_STORE_URL/KEYS (or ``store``), an in-memory FHIR client, no rate limits.
    ``sync``: SQLite's ``PRAGMA synchronous`` (FULL as the store ships; NORMAL is WAL's
    usual)."""
    from sqlalchemy import event

    store = store or Store.from_env()
    if sync != "FULL":

        @event.listens_for(store.engine, "connect")
        def _sync(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA synchronous={sync}")

    settings = replace(
        load_link_settings(),
        per_link=Window(requests=10**6, seconds=60),
        per_client=Window(requests=10**6, seconds=60),
        files_per_client=Window(requests=10**6, seconds=60),
    )
    return create_app(
        {
            "SYMFHIR_STORE": store,
            "SYMFHIR_LINKS_CLIENT": MemoryFhir,
            "SYMFHIR_LINKS_SETTINGS": settings,
            # The re-check's answer is the FHIR server's time: here it answers at once.
            "SYMFHIR_LINKS_CONSENT_CHECK": lambda context: True,
        }
    )


@contextmanager
def gunicorn(
    store_url: str, key: str, sync: str, workers: int, threads: int
) -> Iterator[tuple[str, Path]]:
    """The service under gunicorn as ``scripts/serve links`` runs it (gthread), its access
    log giving each request's status and time in the worker (us)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = Path(tempfile.mkdtemp()) / "access.log"
    env = {
        **os.environ,
        "SYMFHIR_STORE_URL": store_url,
        "SYMFHIR_STORE_KEYS": key,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}",
    }
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--preload",
        "--no-control-socket",
        "--backlog",
        "256",
        "--access-logfile",
        str(log),
        "--access-logformat",
        "%(s)s %(D)s",
        f"bench_sharing_links:service_app({sync!r})",
    ]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/view", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the link service did not start") from None
                time.sleep(0.2)
        yield base, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def run_load(
    base: str, log: Path, jobs: list[tuple[str, dict[str, Any]]], concurrency: int
) -> tuple[list[float], list[float], list[int]]:
    """Post every (path, body) of ``jobs`` from ``concurrency`` clients started together,
    each keeping one request in flight. Returns the app times (s, from the access log), the
    client-side latencies (s) and each job's status."""
    seen = log.read_text().count("\n") if log.exists() else 0
    latencies: list[float] = [0.0] * len(jobs)
    statuses: list[int] = [0] * len(jobs)
    cursor = iter(range(len(jobs)))
    taking = threading.Lock()
    barrier = threading.Barrier(concurrency)

    def worker() -> None:
        with requests.Session() as http:
            barrier.wait()
            while True:
                with taking:
                    n = next(cursor, None)
                if n is None:
                    return
                path, body = jobs[n]
                began = time.perf_counter()
                statuses[n] = http.post(base + path, json=body, timeout=120).status_code
                latencies[n] = time.perf_counter() - began

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the access log is written after each answer
        lines = log.read_text().splitlines()[seen:]
        if len(lines) >= len(jobs):
            break
        time.sleep(0.1)
    app = [int(line.split()[1]) / 1e6 for line in lines]
    return app, latencies, statuses


def path_of(link: NewLink) -> str:
    return "/shl/m/" + link.manifest_url.rsplit("/", 1)[1]


def manifest_bench(concurrency: int, rounds: int, sync: str, workers: int, threads: int) -> None:
    label = "as shipped" if sync == "FULL" else "WAL's usual"
    print(
        f"(a) manifest endpoint under gunicorn ({workers} workers x {threads} threads), "
        f"{concurrency} concurrent clients, SQLite synchronous={sync} ({label})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        key = Fernet.generate_key().decode()
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url, [key])
        store.create_tables()
        plain = [make(store, f"p{n}", None) for n in range(concurrency)]
        guarded = [make(store, f"q{n}", PASSCODE) for n in range(concurrency)]
        brute = make(store, "brute", PASSCODE)
        with gunicorn(url, key, sync, workers, threads) as (base, log):
            # Without a passcode: each link opened `rounds` times.
            jobs = [(path_of(link), {"recipient": "Dr. Bench"}) for link in plain]
            run_load(base, log, jobs, concurrency)  # warm up
            jobs = jobs * rounds
            app, seen, statuses = run_load(base, log, jobs, concurrency)
            if set(statuses) != {200}:
                raise SystemExit(f"unexpected answers: {Counter(statuses)}")
            print(
                f"    no passcode:   {len(jobs)} requests  app time p50 "
                f"{statistics.median(app) * 1e3:5.1f} ms  p95 {pct(app, 0.95) * 1e3:5.1f} ms "
                f"(goal < 50 ms)   client p95 {pct(seen, 0.95) * 1e3:6.1f} ms"
            )

            # With a passcode: right and wrong ones mixed, plus one brute-forced link.
            jobs = []
            wrong_per_link = Counter[str]()
            for r in range(rounds):
                for n, link in enumerate(guarded):
                    wrong = (n + r) % 3 == 0 and wrong_per_link[link.link_id] < 3
                    if wrong:
                        wrong_per_link[link.link_id] += 1
                    given = f"nope-{r}" if wrong else PASSCODE
                    jobs.append((path_of(link), {"recipient": "Dr. Bench", "passcode": given}))
            brute_jobs = [
                (path_of(brute), {"recipient": "x", "passcode": f"guess-{i}"}) for i in range(20)
            ]
            jobs = jobs[:concurrency] + brute_jobs + jobs[concurrency:]
            app, seen, statuses = run_load(base, log, jobs, concurrency)
        brute_at = range(concurrency, concurrency + len(brute_jobs))
        brute_status = Counter(statuses[i] for i in brute_at)
        others = [i for i in range(len(jobs)) if i not in brute_at]
        right = [i for i in others if jobs[i][1]["passcode"] == PASSCODE]
        wrong = [i for i in others if jobs[i][1]["passcode"] != PASSCODE]
        ok = all(statuses[i] == 200 for i in right) and all(statuses[i] == 401 for i in wrong)
        with store.session(readonly=True) as session:
            failures = dict(session.execute(select(ShareLink.link_id, ShareLink.failures)).all())
            served = session.execute(
                select(func.count()).where(ShareAccess.outcome == "ok")
            ).scalar_one()
        exact = all(failures[link.link_id] == wrong_per_link[link.link_id] for link in guarded)
        capped = brute_status == Counter({401: 5, 404: 15}) and failures[brute.link_id] == 5
        print(
            f"    with passcode: {len(jobs)} requests  app time p50 "
            f"{statistics.median(app) * 1e3:5.1f} ms  p95 {pct(app, 0.95) * 1e3:5.1f} ms "
            f"  client p95 {pct(seen, 0.95) * 1e3:6.1f} ms  (Argon2id m=19 MiB t=2 p=1: "
            f"{argon2_ms():.0f} ms a check on one core; {os.cpu_count()} cores)"
        )
        print(
            f"    passcodes under load: {len(right)} right -> "
            f"{sum(statuses[i] == 200 for i in right)} x 200, {len(wrong)} wrong -> "
            f"{sum(statuses[i] == 401 for i in wrong)} x 401; failures per link exact: {exact}; "
            f"brute force 20 at once -> {dict(brute_status)} (cap held: {capped})"
        )
        if not (ok and exact and capped and served >= len(right)):
            raise SystemExit("passcode checking was NOT exact under load")
        store.dispose()


def argon2_ms() -> float:
    hasher = passcode_hasher(load_link_settings())
    digest = hasher.hash(PASSCODE)
    start = time.perf_counter()
    for _ in range(5):
        hasher.verify(digest, PASSCODE)
    return (time.perf_counter() - start) / 5 * 1e3


def photo_file(size: int) -> bytes:
    image = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    return json.dumps(
        {"resourceType": "Media", "content": {"contentType": "image/jpeg", "data": image}}
    ).encode()


def photo_package(total_mb: int) -> tuple[list[tuple[str, bytes]], int]:
    """A summary and photos of 5 MB (Media JSON, base64 image) making ``total_mb``, in
    memory (reading them is not encryption's time); and the size of one photo file."""
    per_photo = 5 * MB
    count = max(1, total_mb * MB // per_photo)
    files = [("patient-summary.json", summary())]
    files += [(f"photo-{i}.json", photo_file(per_photo)) for i in range(count)]
    return files, len(files[1][1])


def in_memory(files: list[tuple[str, bytes]]) -> SharePackage:
    return package("bench", [(name, lambda data=data: data) for name, data in files])


def best(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def new_link(store: Store, shared: SharePackage) -> NewLink:
    return create_link(
        store,
        shared,
        label=None,
        passcode=None,
        expires_at=NOW + timedelta(days=1),
        max_accesses=None,
        single_file=False,
        created_by="Practitioner/bench",
        links_base="http://localhost:5300",
        viewer_base="http://localhost:5300/view",
        now=NOW,
    )


def encryption_bench(total_mb: int) -> None:
    files, per_photo = photo_package(total_mb)
    shared = in_memory(files)
    size = sum(len(data) for _, data in files)
    key = shl.new_key()
    aad = shl.protected_header(FHIR_JSON).encode("ascii")
    print(
        f"(b) encrypting a {size / MB:.0f} MB package (a summary and {len(files) - 1} photos "
        f"of {per_photo / MB:.1f} MB), best of 5"
    )

    def raw_aes() -> None:
        aead = AESGCM(key)
        for _, data in files:
            aead.encrypt(os.urandom(12), data, aad)

    def ours() -> None:
        # The encryption step of create_link, file by file (a fresh IV, DEFLATE for JSON
        # documents, AES-GCM, the JWE's binary parts), without the store.
        for one in shared.files:
            encrypt_file(one, key)

    def joserfc_compact() -> None:
        # The former step: a whole compact JWE made by joserfc (base64url included).
        for one in shared.files:
            jwe.encrypt_compact(
                {"alg": "dir", "enc": "A256GCM", "cty": FHIR_JSON},
                one.read(),
                OctKey.import_key(key),
                algorithms=shl.ALGORITHMS,
            )

    raw = best(5, raw_aes)
    step = best(5, ours)
    before = best(3, joserfc_compact)
    for name, seconds in (
        ("raw AES-256-GCM (cryptography)", raw),
        ("our encryption step (JWE parts)", step),
        ("before: joserfc compact JWE", before),
    ):
        print(f"    {name:33s} {size / MB / seconds:7.0f} MB/s  ({seconds * 1e3:6.0f} ms)")
    print(
        f"    our step / raw AES-GCM: {raw / step:.2f}x (goal >= 0.5x); before: {raw / before:.2f}x"
    )

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}", [Fernet.generate_key().decode()])
        store.create_tables()
        whole = best(1, lambda: new_link(store, shared))
        print(
            f"    create_link, encryption and SQLite writes (synchronous=FULL) together: "
            f"{size / MB / whole:.0f} MB/s ({whole * 1e3:.0f} ms)"
        )

        def peak(made: list[tuple[str, Callable[[], bytes]]]) -> float:
            tracemalloc.start()
            new_link(store, package("mem", made))
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return top / MB

        # Photos made on demand, as the package reads them from the FHIR server.
        lazy = [("patient-summary.json", summary)] + [
            (f"photo-{i}.json", lambda: photo_file(5 * MB)) for i in range(len(files) - 1)
        ]
        whole_peak, one_peak = peak(lazy), peak(lazy[:2])
        print(
            f"    create_link peak memory (tracemalloc): whole package {whole_peak:.1f} MB, "
            f"one photo {one_peak:.1f} MB -> "
            f"{'flat' if whole_peak < one_peak * 1.5 else 'GROWS'} (a photo file is "
            f"{per_photo / MB:.1f} MB)"
        )
        store.dispose()


def serving_bench(total_mb: int, workers: int, threads: int) -> None:
    """The compact form streamed out of the stored parts: the chunks alone, the app
    in-process (its test client), and the service under gunicorn over loopback HTTP."""
    files, per_photo = photo_package(total_mb)
    with tempfile.TemporaryDirectory() as tmp:
        key = Fernet.generate_key().decode()
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url, [key])
        store.create_tables()
        link = new_link(store, in_memory(files))
        del files
        mid = link.manifest_url.rsplit("/", 1)[1]
        print(f"(c) serving the {total_mb} MB package's files as streamed compact JWE")

        parts = [shl.encrypt_parts(photo_file(5 * MB), shl.new_key(), FHIR_JSON)]
        out = sum(p.compact_length for p in parts)
        alone = best(5, lambda: [len(c) for p in parts for c in p.compact_chunks()])
        print(f"    chunks alone (base64url, one 5 MB photo):   {out / MB / alone:6.0f} MB/s out")

        client = service_app(store=store).test_client()

        def download_all() -> tuple[int, float]:
            manifest = client.post(f"/shl/m/{mid}", json={"recipient": "Dr. Bench"}).get_json()
            sent = 0
            began = time.perf_counter()
            for entry in manifest["files"]:
                response = client.get(urlsplit(entry["location"]).path, buffered=False)
                sent += sum(len(chunk) for chunk in response.response)
                response.close()
            return sent, time.perf_counter() - began

        sent, seconds = min((download_all() for _ in range(3)), key=lambda r: r[1])
        print(
            f"    the app in-process (store read + stream): {sent / MB / seconds:6.0f} MB/s out "
            f"({sent / MB:.0f} MB in {seconds * 1e3:.0f} ms)"
        )

        manifest = client.post(f"/shl/m/{mid}", json={"recipient": "Dr. Bench"}).get_json()
        one = urlsplit(manifest["files"][1]["location"]).path
        tracemalloc.start()
        response = client.get(one, buffered=False)
        length = sum(len(chunk) for chunk in response.response)
        response.close()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"    peak memory streaming one photo (tracemalloc): {top / MB:.1f} MB for "
            f"{length / MB:.1f} MB sent (the ciphertext read from the store, "
            f"{per_photo / MB:.1f} MB, plus chunks)"
        )

        with (
            gunicorn(url, key, "FULL", workers, threads) as (base, _log),
            requests.Session() as http,
        ):

            def over_http() -> tuple[int, float]:
                found = http.post(f"{base}/shl/m/{mid}", json={"recipient": "Dr. Bench"})
                sent = 0
                began = time.perf_counter()
                for entry in found.json()["files"]:
                    path = urlsplit(entry["location"]).path
                    with http.get(base + path, stream=True, timeout=60) as answer:
                        answer.raise_for_status()
                        for chunk in answer.iter_content(chunk_size=MB):
                            sent += len(chunk)
                return sent, time.perf_counter() - began

            sent, seconds = min((over_http() for _ in range(3)), key=lambda r: r[1])
        print(
            f"    gunicorn over loopback HTTP (one client): {sent / MB / seconds:6.0f} MB/s out "
            f"({sent / MB:.0f} MB in {seconds * 1e3:.0f} ms)"
        )
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--sync", nargs="+", default=["FULL", "NORMAL"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="per worker (as scripts/serve)")
    parser.add_argument("--skip-manifest", action="store_true")
    parser.add_argument("--skip-encryption", action="store_true")
    args = parser.parse_args()
    if not args.skip_manifest:
        for sync in args.sync:
            manifest_bench(args.concurrency, args.rounds, sync.upper(), args.workers, args.threads)
    if not args.skip_encryption:
        encryption_bench(args.mb)
        serving_bench(args.mb, args.workers, args.threads)


if __name__ == "__main__":
    main()
