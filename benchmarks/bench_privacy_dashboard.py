"""Benchmark the privacy officer's dashboard with 10,000 open requests: symfhir's own time to
list them (read, filter and sort every Task, read the first page in full) and render the page.

The Tasks are built in memory and handed over as the FHIR client's search would yield them, so
the figure is app time only (the FHIR server's time to serve the 50 search pages is its own;
a shared server is not filled with 10,000 requests). Goal: first page p95 under 300 ms.

    python benchmarks/bench_privacy_dashboard.py [--requests 10000] [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from smart_app import create_app
from symfhir.privacy.model import KINDS, PrivacyRequest, Requester, Verification
from symfhir.privacy.requests import list_requests
from symfhir.privacy.task import to_task
from symfhir.privacy.tasks import Settings
from symfhir.terminology import load_terminology
from symfhir.workspace.actor import Actor

ZONE = ZoneInfo("America/Chicago")


class Tasks:
    """Yields the Tasks as FhirClient.search does."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = tasks

    def search(self, resource_type: str, params: Any = None) -> Any:
        return iter(self.tasks)


def make_tasks(count: int, now: datetime, settings: Settings) -> list[dict[str, Any]]:
    tasks = []
    for number in range(count):
        received = now - timedelta(days=number % 45, minutes=number)
        request = PrivacyRequest(
            task_id=None,
            kind=KINDS[number % len(KINDS)],
            requester=Requester(
                f"Bench Person {number}", date(1980, 1, 1), f"bench{number}@example.com"
            ),
            received=received,
            due=(received + timedelta(days=30)).date(),
            business_status="identity-verified",
            patient_id=str(100000 + number),
            verifications=(Verification("email-code", None, received),),
        )
        task = to_task(request, f"bench-{number}", settings.spa.identifier_base)
        task["id"] = str(number + 1)
        task["meta"] = {"versionId": "3"}
        tasks.append(task)
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    settings = Settings.load()
    now = datetime.now(ZONE)
    client = Tasks(make_tasks(args.requests, now, settings))
    app = create_app({"SYMFHIR_TOKEN_KEYS": [], "SECRET_KEY": "bench"})
    terms = load_terminology()
    kinds = {kind: terms.coding("privacy_request", kind)["display"] for kind in KINDS}
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        page = list_requests(
            client, Actor(None), now=now, audit=lambda *a, **k: None, settings=settings
        )
        with app.test_request_context("/privacy-dashboard/"):
            from flask import render_template

            html = render_template("privacy_dashboard.html", page=page, kinds=kinds, overdue=0)
        times.append(time.perf_counter() - started)
    times.sort()
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    print(
        f"dashboard, {page.total} open requests, first page of {len(page.items)} "
        f"({len(html) // 1024} KiB): p50 {statistics.median(times) * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms app time (goal: p95 < 300 ms)"
    )


if __name__ == "__main__":
    main()
