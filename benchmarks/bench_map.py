"""Benchmark `symfhir map` against the naive fhir.resources path, side by side.

For each N it generates N synthetic clients (default template), then runs in
separate child processes, one after the other on the same input:

  symfhir  the real `symfhir map` job (read, map, shape-cached validation, json.dumps)
  naive    the same reading and mapping, but one fhir.resources R4B model per
           resource: model_validate, then model_dump_json (what a developer writes today)

It prints records/s and resources/s for both, their ratio, and each child's peak RSS.
Rates are per CPU-second of the child ("on one core"; the same as wall time on an idle
machine, and steady when other work shares it). "start" is the fixed cost of a run on an
input with no records (imports, mapping tables); "after start" is N / (time - start).
Short runs are repeated (--repeat, for N <= 2,000), the two paths taking turns so a slow
spell of the machine hits both, and the fastest run of each path is reported, as timeit
does: a slower run was slowed by something else on the machine. Peak RSS is the largest
of the runs.

    python benchmarks/bench_map.py                 # N = 1,000 and 10,000
    python benchmarks/bench_map.py --sizes 200     # quick look
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
AS_OF = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))


def _sample_module():
    spec = importlib.util.spec_from_file_location(
        "make_sample_clients", ROOT / "scripts" / "make_sample_clients.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The yardstick is a client of about 15 resources: intake, a few answers
# extracted to Observations, an allergy, a medication, one treatment, the four
# consents every client signs at the front desk. "rich" keeps everything the
# sample generator fills in (about 27 resources: all 12 consent kinds, history, notes).
TYPICAL_CONSENTS = ("treatment", "hipaa_notice", "photos_clinical", "marketing_email")


def _typical(row: dict[str, str]) -> dict[str, str]:
    for key in [k for k in row if k.startswith("consent_")]:
        if not key.startswith(tuple(f"consent_{kind}" for kind in TYPICAL_CONSENTS)):
            del row[key]
    for kind in TYPICAL_CONSENTS:
        row[f"consent_{kind}"] = "given"
        row.setdefault(f"consent_{kind}_date", row["intake_date"])
        row.setdefault(f"consent_{kind}_signer", "client")
        row.setdefault(f"consent_{kind}_version", "2026-01-01")
        row.pop(f"consent_{kind}_withdrawn_on", None)
    for key in ("conditions", "medications", "allergies"):
        row[key] = row[key].split("; ")[0]
    row["prior_treatments"] = row["contraindications"] = row["consultation_notes"] = ""
    row["treatments"] = json.dumps(json.loads(row["treatments"])[:1])
    return row


def generate(path: Path, n: int, profile: str = "typical", prefix: str = "B") -> None:
    """N valid synthetic clients in the default template (no signed-form files)."""
    sample = _sample_module()
    rnd = random.Random(n)
    rows = []
    for i in range(1, n + 1):
        row = sample.valid_row(i, rnd)
        row["client_id"] = f"{prefix}{i:06d}"
        for key in [k for k in row if k.endswith("_form")]:
            row[key] = ""
        rows.append(_typical(row) if profile == "typical" else row)
    columns: list[str] = []
    for row in rows[:50]:
        columns += [c for c in row if c not in columns]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def child_symfhir(src: Path, out: Path) -> tuple[int, int]:
    from symfhir.map_job import MapOptions, run_map

    summary = run_map(src, out, MapOptions(now=AS_OF))
    return summary.mapped, summary.resources


def child_naive(src: Path, out: Path) -> tuple[int, int]:
    from fhir.resources.R4B import get_fhir_model_class

    from symfhir.mapping.bundle import client_entries
    from symfhir.mapping.context import MappingContext
    from symfhir.sources.clients import ReadOptions, read_clients
    from symfhir.sources.fieldmap import load_field_map
    from symfhir.sources.rejects import Reject

    ctx = MappingContext.load(AS_OF)
    fmap = load_field_map("default", tuple(ctx.consent_kinds.kinds))
    options = ReadOptions(
        today=ctx.today, terminology=ctx.terminology, consent_kinds=ctx.consent_kinds
    )
    mapped = resources = 0
    with out.open("w", encoding="utf-8") as fh:
        for item in read_clients(src, fmap, options):
            if isinstance(item, Reject):
                continue
            parts = []
            for entry in client_entries(item.value, ctx, item.record):
                model = get_fhir_model_class(entry.resource["resourceType"])
                body = model.model_validate(entry.resource).model_dump_json()
                request = {
                    "method": "POST",
                    "url": entry.resource["resourceType"],
                    "ifNoneExist": entry.if_none_exist,
                }
                full_url = json.dumps(entry.full_url)
                parts.append(
                    f'{{"fullUrl":{full_url},"resource":{body},"request":{json.dumps(request)}}}'
                )
            fh.write('{"resourceType":"Bundle","type":"transaction","entry":[')
            fh.write(",".join(parts))
            fh.write("]}\n")
            mapped += 1
            resources += len(parts)
    return mapped, resources


def run_child(mode: str, src: Path, out: Path) -> dict:
    out.unlink(missing_ok=True)  # a repeated run must not pay for truncating the last output
    cmd = [sys.executable, __file__, "--child", mode, str(src), str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    output = proc.stdout.read()
    proc.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode} child failed: {output}")
    mapped, resources, busy, cpu = output.split()
    return {
        "wall": elapsed,
        "busy": float(cpu),
        "busy_wall": float(busy),
        "mapped": int(mapped),
        "resources": int(resources),
        "rss_mib": usage.ru_maxrss / 1024,
        "cpu": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per path for N <= 2,000 (fastest kept)"
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--profiles",
        nargs="+",
        choices=("typical", "rich"),
        default=["typical", "rich"],
        help="typical: ~15 resources per client (the goal's yardstick); rich: ~27",
    )
    parser.add_argument(
        "--generate", nargs=3, metavar=("N", "PATH", "PROFILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate[1]), int(args.generate[0]), args.generate[2])
        return
    if args.child:
        mode, src, out = args.child
        start, start_cpu = time.perf_counter(), time.process_time()
        fn = child_symfhir if mode == "symfhir" else child_naive
        mapped, resources = fn(Path(src), Path(out))
        print(mapped, resources, time.perf_counter() - start, time.process_time() - start_cpu)
        return
    print(
        f"python {sys.version.split()[0]}, 1 process per run, single core each; "
        f"fastest of {max(1, args.repeat)} runs for N <= 2,000"
    )
    header = (
        f"{'profile':>8} {'N':>7} {'path':>8} {'records/s':>10} {'resources/s':>12} "
        f"{'res/rec':>8} {'peak RSS':>10} {'start':>7} {'rec/s after start':>18}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.csv"
        subprocess.run(
            [sys.executable, __file__, "--generate", "1", str(empty), "typical"], check=True
        )
        empty.write_text(empty.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
        start = {
            mode: min(run_child(mode, empty, Path(tmp) / "empty.ndjson")["busy"] for _ in range(3))
            for mode in ("symfhir", "naive")
        }
        for profile, n in [(p, n) for p in args.profiles for n in args.sizes]:
            src = Path(tmp) / f"clients-{profile}-{n}.csv"
            # In its own process: a child forked from a big parent would count the
            # parent's memory in its peak RSS (Linux keeps the pre-exec high-water mark).
            generate_cmd = [sys.executable, __file__, "--generate", str(n), str(src), profile]
            subprocess.run(generate_cmd, check=True)
            results = {}
            repeat = max(1, args.repeat) if n <= 2000 else 1
            runs: dict[str, list[dict]] = {"symfhir": [], "naive": []}
            for _ in range(repeat):
                for mode in runs:
                    runs[mode].append(run_child(mode, src, Path(tmp) / f"{mode}-{n}.ndjson"))
            for mode in ("symfhir", "naive"):
                r = min(runs[mode], key=lambda run: run["busy"])
                r["rss_mib"] = max(run["rss_mib"] for run in runs[mode])
                results[mode] = r
                rate = r["mapped"] / r["busy"]
                res_rate = r["resources"] / r["busy"]
                steady = r["mapped"] / max(r["busy"] - start[mode], 1e-9)
                print(
                    f"{profile:>8} {n:>7} {mode:>8} {rate:>10.0f} {res_rate:>12.0f} "
                    f"{r['resources'] / max(r['mapped'], 1):>8.1f} {r['rss_mib']:>8.0f} MiB"
                    f" {start[mode]:>6.2f}s {steady:>18.0f}"
                )
            ratio = results["naive"]["busy"] / results["symfhir"]["busy"]
            print(
                f"{profile:>8} {n:>7} {'ratio':>8} {ratio:>9.1f}x  "
                "(symfhir vs naive, same input, same run)"
            )


if __name__ == "__main__":
    main()
