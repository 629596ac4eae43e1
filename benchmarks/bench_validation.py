"""Micro-benchmark: R4B reference validation vs the warm FastValidator, per resource.

Uses one realistic client mapped by symfhir itself (Observation, Patient, Consent and
the client's transaction Bundle), plus the naive model_dump_json vs json.dumps.

    python benchmarks/bench_validation.py
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fhir.resources.R4B import get_fhir_model_class  # noqa: E402

from symfhir.mapping.bundle import client_entries, transaction  # noqa: E402
from symfhir.mapping.context import MappingContext  # noqa: E402
from symfhir.model import SpaRecord  # noqa: E402
from symfhir.validation.fast import FastValidator  # noqa: E402
from symfhir.validation.rules import bundle_rules  # noqa: E402
from symfhir.validation.serialize import dumps  # noqa: E402
from symfhir.validation.structural import validate_resource  # noqa: E402
from tests.conftest import make_record_dict  # noqa: E402


def per_call_us(fn, seconds: float = 0.4) -> float:
    n, total = 0, 0.0
    batch = 10
    while total < seconds:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        total += time.perf_counter() - start
        n += batch
        batch *= 2
    return total / n * 1e6


def main() -> None:
    ctx = MappingContext.load(datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago")))
    context = {
        "today": ctx.today,
        "terminology": ctx.terminology,
        "consent_kinds": ctx.consent_kinds,
    }
    record = SpaRecord.model_validate(make_record_dict(), context=context)
    entries = client_entries(record, ctx, "clients.csv row 2")
    resources = [e.resource for e in entries]
    bundle = transaction(entries)
    pick = {}
    for resource in resources:
        pick.setdefault(resource["resourceType"], resource)
    cases = [(name, pick[name]) for name in ("Observation", "Patient", "Consent")]
    cases.append((f"Bundle ({len(resources)} entries)", bundle))

    fast = FastValidator()
    for _, resource in cases:
        assert fast.validate(resource) == [] == validate_resource(resource)

    print(f"{'resource':<24}{'R4B µs':>10}{'fast µs':>10}{'speed-up':>10}")
    for name, resource in cases:
        ref = per_call_us(lambda r=resource: validate_resource(r))
        quick = per_call_us(lambda r=resource: fast.validate(r))
        print(f"{name:<24}{ref:>10.1f}{quick:>10.1f}{ref / quick:>9.1f}x")

    all_ref = per_call_us(lambda: [validate_resource(r) for r in resources])
    all_fast = per_call_us(lambda: [fast.validate(r) for r in resources])
    rules = per_call_us(lambda: bundle_rules(bundle))
    print(f"\none client, {len(resources)} resources validated one by one:")
    print(
        f"  R4B {all_ref:.0f} µs, fast {all_fast:.0f} µs "
        f"({all_fast / len(resources):.1f} µs per resource); bundle_rules {rules:.0f} µs"
    )

    obs = pick["Observation"]
    cls = get_fhir_model_class("Observation")
    model = cls.model_validate(obs)
    print("\nserializing one Observation:")
    print(
        f"  R4B model_dump_json {per_call_us(model.model_dump_json):.1f} µs, "
        f"json dumps {per_call_us(lambda: dumps(obs)):.1f} µs"
    )
    print(f"\ncache: {fast.cache_size()} shapes, {fast.hits} hits, {fast.misses} misses")


if __name__ == "__main__":
    main()
