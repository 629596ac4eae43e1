"""Benchmark the deletion plan (symfhir/privacy/retention.py) for a client with 2,000 resources.

The plan is symfhir's own work in a deletion: the reads before it and the deletes after it are
the FHIR server's. This builds one synthetic client's record in memory (intake, observations,
allergies, medications, conditions, 300 procedures, consents of every kind, 300 photos with
their Binaries, Provenances and AuditEvents naming photos) and times ``plan_deletion`` on it,
CPU time of this process, cold (rules loaded from mappings/retention.yaml) and warm.
Goal: well under 1 s.

    python benchmarks/bench_deletion.py [--resources 2000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from symfhir.privacy.retention import (
    CONSENT_KIND_SYSTEM,
    DELETE,
    plan_deletion,
)
from symfhir.privacy.retention_rules import load_retention

ZONE = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)
P = {"reference": "Patient/bench"}
KINDS = (
    "treatment",
    "hipaa_notice",
    "photos_clinical",
    "photos_website",
    "photos_social",
    "marketing_email",
    "marketing_sms",
    "marketing_phone",
    "testimonials",
    "research",
)


def record(total: int) -> list[dict[str, Any]]:
    """One client's resources, ``total`` of them, in the proportions of a long-time client."""
    out: list[dict[str, Any]] = [{"resourceType": "Patient", "id": "bench", "telecom": [{}]}]
    start = date(2018, 1, 1)

    def day(i: int) -> str:
        return (start + timedelta(days=i * 3 % 2900)).isoformat()

    def add(n: int, make: Any) -> None:
        for i in range(n):
            out.append(make(i))

    share = total / 2000
    # How many of each kind, so that every reference names a resource of the record.
    answers, observations, treatments, consents = (
        max(1, int(n * share)) for n in (20, 400, 300, 20)
    )
    add(
        answers,
        lambda i: {
            "resourceType": "QuestionnaireResponse",
            "id": f"q{i}",
            "subject": P,
            "authored": day(i),
        },
    )
    add(
        observations,
        lambda i: {
            "resourceType": "Observation",
            "id": f"o{i}",
            "subject": P,
            "effectiveDateTime": day(i),
            "derivedFrom": [{"reference": f"QuestionnaireResponse/q{i % answers}"}],
        },
    )
    add(
        int(50 * share),
        lambda i: {"resourceType": "AllergyIntolerance", "id": f"a{i}", "patient": P},
    )
    add(
        int(80 * share),
        lambda i: {"resourceType": "MedicationStatement", "id": f"m{i}", "subject": P},
    )
    add(int(80 * share), lambda i: {"resourceType": "Condition", "id": f"c{i}", "subject": P})
    add(
        treatments,
        lambda i: {
            "resourceType": "Procedure",
            "id": f"t{i}",
            "subject": P,
            "performedDateTime": f"{day(i)}T10:00:00-06:00",
        },
    )
    add(int(4 * share), lambda i: {"resourceType": "RelatedPerson", "id": f"r{i}", "patient": P})
    add(
        consents,
        lambda i: {
            "resourceType": "Consent",
            "id": f"k{i}",
            "status": "active",
            "patient": P,
            "dateTime": day(i * 40),
            "category": [
                {"coding": [{"system": CONSENT_KIND_SYSTEM, "code": KINDS[i % len(KINDS)]}]}
            ],
            "provision": {"type": "permit"},
        },
    )
    photos = int(300 * share)
    add(photos, lambda i: {"resourceType": "Binary", "id": f"b{i}", "securityContext": P})
    add(
        photos,
        lambda i: {
            "resourceType": "Media",
            "id": f"p{i}",
            "subject": P,
            "createdDateTime": f"{day(i)}T11:00:00-06:00",
            "content": {"url": f"Binary/b{i}"},
            "partOf": [{"reference": f"Procedure/t{i % treatments}"}],
        },
    )
    add(
        photos,
        lambda i: {
            "resourceType": "AuditEvent",
            "id": f"e{i}",
            "entity": [{"what": P}, {"what": {"reference": f"Media/p{(i * 7) % photos}"}}],
        },
    )
    left = total - len(out)
    add(
        left,
        lambda i: {
            "resourceType": "Provenance",
            "id": f"v{i}",
            "target": [
                P,
                {"reference": f"Observation/o{i % observations}"},
                {"reference": f"Consent/k{i % consents}"},
            ],
        },
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    resources = record(args.resources)

    cold_start = time.process_time()
    load_retention.cache_clear()
    plan = plan_deletion(resources, NOW, zone=ZONE)
    cold = time.process_time() - cold_start
    warm = []
    for _ in range(args.repeat):
        begin = time.process_time()
        plan_deletion(resources, NOW, zone=ZONE)
        warm.append(time.process_time() - begin)

    going = sum(1 for i in plan.items if i.action == DELETE)
    print(f"deletion plan for a client with {len(resources)} resources")
    print(f"  delete now: {going}, kept: {len(plan.items) - going}, unlinked: {len(plan.unlink)}")
    print(f"  cold (rules read from mappings/retention.yaml): {cold * 1000:.1f} ms CPU")
    print(
        f"  warm, {args.repeat} runs: median {statistics.median(warm) * 1000:.1f} ms, "
        f"max {max(warm) * 1000:.1f} ms CPU"
    )
    goal = 1.0
    ok = cold < goal and max(warm) < goal
    print(f"  goal: under {goal:.0f} s of symfhir's own time: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
