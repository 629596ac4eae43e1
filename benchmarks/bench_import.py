"""Benchmark `symfhir import` against the naive per-resource path, same HAPI, same run.

For each N it generates N synthetic clients (the "typical" profile of bench_map.py,
about 17 resources each) under client ids no earlier run used, so both paths create
every resource, and runs in child processes one after the other:

  symfhir  `symfhir import` (batched conditional transactions over --workers threads)
  naive    what a developer writes today: one fhirclient model per resource, `create()`
           in a loop, urn:uuid references swapped for the ids the server returned

It prints resources/s for both and their ratio, the share of wall time the symfhir
process spent on its own CPU (the rest is waiting for the server), and each child's
peak RSS. The naive path takes minutes per thousand clients, so it runs only for
N <= --naive-max (default 1,000).

A second round (--latency-ms, default 20; --latency-sizes, default 200) puts a local
proxy in front of the server that holds every request for that long, as the network
between a spa and its hosted EHR does: the naive path pays it once per resource,
symfhir once per transaction.

    python benchmarks/bench_import.py                  # N = 1,000 and 10,000, then 200 at 20 ms
    python benchmarks/bench_import.py --sizes 200 --latency-sizes   # quick look, no proxy
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_map import AS_OF, generate  # noqa: E402
from benchmarks.local_fhir import ensure_server  # noqa: E402

BASE = os.environ.get(
    "FHIR_BASE_URL", f"http://localhost:{os.environ.get('FHIR_PORT', '8080')}/fhir"
)


class DelayingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to ``upstream`` after holding it for ``delay`` seconds."""

    daemon_threads = True

    def __init__(self, upstream: str, delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.local = threading.local()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fhir"

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # peer's delayed ACK would add ~40 ms to every answer on top of the chosen latency.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _forward(self) -> None:
        server: DelayingProxy = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        time.sleep(server.delay)
        skip = {"host", "content-length", "connection", "accept-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        path = self.path.removeprefix("/fhir")
        answer = server.session().request(
            self.command, server.upstream + path, data=body, headers=headers, timeout=600
        )
        payload = answer.content
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "content-encoding",
            ):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


def run(cmd: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{cmd[:4]} failed:\n{out}\n{err}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
        "out": out,
    }


def symfhir_import(src: Path, tmp: Path, workers: int, batch: int, base: str = BASE) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "symfhir.cli",
        "import",
        str(src),
        "--server",
        base,
        "--quiet",
        "--as-of",
        AS_OF.isoformat(),
        "--workers",
        str(workers),
        "--batch-size",
        str(batch),
        "--checkpoint",
        str(tmp / f"{src.stem}.checkpoint.json"),
        "--rejects",
        str(tmp / f"{src.stem}.rejects.csv"),
    ]
    result = run(cmd)
    match = re.search(r"resources: (\d+) created, (\d+) updated, (\d+) unchanged", result["out"])
    if not match:
        raise SystemExit(f"unexpected output:\n{result['out']}")
    result["resources"] = sum(int(g) for g in match.groups())
    result["created"] = int(match.group(1))
    return result


def naive_child(src: Path, base: str) -> None:
    """One fhirclient create per resource, in bundle order (dependencies come first)."""
    from fhirclient.models import fhirelementfactory
    from fhirclient.server import FHIRServer

    from symfhir.mapping.bundle import client_entries
    from symfhir.mapping.context import MappingContext
    from symfhir.sources.clients import ReadOptions, read_clients
    from symfhir.sources.fieldmap import load_field_map
    from symfhir.sources.rejects import Reject

    server = FHIRServer(None, base_uri=base + "/")
    ctx = MappingContext.load(AS_OF)
    fmap = load_field_map("default", tuple(ctx.consent_kinds.kinds))
    options = ReadOptions(
        today=ctx.today, terminology=ctx.terminology, consent_kinds=ctx.consent_kinds
    )
    created = 0
    ids: dict[str, str] = {}
    for item in read_clients(src, fmap, options):
        if isinstance(item, Reject):
            continue
        for entry in client_entries(item.value, ctx, item.record):
            if entry.full_url in ids:
                continue
            if entry.resource["resourceType"] == "Organization":
                # Shared by every client: found (or created) once, so the naive run
                # leaves no duplicate behind for later imports to trip over.
                ids[entry.full_url] = _find_or_create(server, entry)
                continue
            resource = _swap(entry.resource, ids)
            model = fhirelementfactory.FHIRElementFactory.instantiate(
                resource["resourceType"], resource
            )
            answer = model.create(server)
            ids[entry.full_url] = f"{resource['resourceType']}/{answer['id']}"
            created += 1
    print(created)


def _find_or_create(server, entry) -> str:
    from fhirclient.models.organization import Organization

    criteria = entry.if_none_exist.removeprefix("identifier=")
    found = server.request_json(f"Organization?identifier={criteria}")
    if found.get("entry"):
        return f"Organization/{found['entry'][0]['resource']['id']}"
    answer = Organization(entry.resource).create(server)
    return f"Organization/{answer['id']}"


def _swap(value, ids):
    if isinstance(value, dict):
        return {k: _swap(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, ids) for v in value]
    if isinstance(value, str) and value.startswith("urn:uuid:"):
        return ids.get(value, value)
    return value


def compare(n: int, tmp: Path, args: argparse.Namespace, base: str, label: str) -> None:
    results = {}
    run_id = uuid.uuid4().hex[:6]
    src = tmp / f"clients-s{run_id}-{n}.csv"
    generate(src, n, "typical", prefix=f"S{run_id}-")
    results["symfhir"] = symfhir_import(src, tmp, args.workers, args.batch_size, base)
    if n <= args.naive_max:
        naive_src = tmp / f"clients-n{run_id}-{n}.csv"
        generate(naive_src, n, "typical", prefix=f"N{run_id}-")
        r = run([sys.executable, __file__, "--naive-child", str(naive_src), base])
        r["resources"] = r["created"] = int(r["out"].split()[-1])
        results["naive"] = r
    for mode, r in results.items():
        print(
            f"{label:>9} {n:>7} {mode:>8} {r['resources']:>10} {r['resources'] / r['wall']:>8.0f} "
            f"{r['wall']:>8.1f} {r['cpu'] / r['wall']:>7.0%} {r['rss_mib']:>6.0f} MiB",
            flush=True,
        )
    if "naive" in results:
        s, v = results["symfhir"], results["naive"]
        ratio = (s["resources"] / s["wall"]) / (v["resources"] / v["wall"])
        print(f"{label:>9} {n:>7} {'ratio':>8} {ratio:>9.1f}x  (resources/s, symfhir vs naive)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--naive-max", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--latency-sizes", type=int, nargs="*", default=[200])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--naive-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_child:
        naive_child(Path(args.naive_child[0]), args.naive_child[1])
        return
    ensure_server(BASE)
    print(f"server {BASE}; symfhir: --workers {args.workers} --batch-size {args.batch_size}")
    print(
        f"{'latency':>9} {'N':>7} {'path':>8} {'resources':>10} {'res/s':>8} {'wall s':>8} "
        f"{'own CPU':>8} {'peak RSS':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for n in args.sizes:
            compare(n, tmp, args, BASE, "local")
        if args.latency_sizes:
            proxy = DelayingProxy(BASE, args.latency_ms / 1000)
            threading.Thread(target=proxy.serve_forever, daemon=True).start()
            for n in args.latency_sizes:
                compare(n, tmp, args, proxy.base, f"+{args.latency_ms:.0f} ms")
            proxy.shutdown()


if __name__ == "__main__":
    main()
