"""Clients' Bundles → one transaction per batch, and the server's answer → outcome counts.

hl7.org/fhir/R4/http.html#transaction: a transaction is all or nothing, so a batch
of clients either lands whole or not at all; the importer then retries its clients
one by one to find the one the server refuses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from symfhir.map_job import MappedClient

OUTCOMES = ("created", "updated", "unchanged")
# HAPI says in each entry's OperationOutcome what a conditional write did; other
# servers are read from the status code and the version alone.
_HAPI_CODES = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"
_HAPI_UNCHANGED = {
    "SUCCESSFUL_CREATE_WITH_CONDITIONAL_MATCH",
    "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH_NO_CHANGE",
    "SUCCESSFUL_UPDATE_NO_CHANGE",
}


@dataclass
class Batch:
    """Consecutive mapped clients sent as one transaction."""

    clients: list[tuple[int, MappedClient]] = field(default_factory=list)

    @property
    def numbers(self) -> list[int]:
        return [n for n, _ in self.clients]

    def __len__(self) -> int:
        return len(self.clients)


def as_updates(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Bundle with conditional updates instead of conditional creates.

    Resources found by business identifier become ``PUT Type?identifier=...`` (created
    when absent, replaced when the source changed, untouched when equal). Tag-keyed
    entries (Binary, whose key is its content hash, and Provenance, which records the
    first import) stay create-once.
    """
    entries = []
    for item in bundle["entry"]:
        request = item["request"]
        criteria = request.get("ifNoneExist", "")
        if request["method"] == "POST" and criteria.startswith("identifier="):
            item = {**item, "request": {"method": "PUT", "url": f"{request['url']}?{criteria}"}}
        entries.append(item)
    return {**bundle, "entry": entries}


def merge(bundles: list[dict[str, Any]]) -> dict[str, Any]:
    """One transaction holding every entry of ``bundles``, shared entries once.

    The spa's Organization is in every client's Bundle under the same fullUrl; a
    transaction may not hold two entries with one fullUrl.
    """
    seen: set[str] = set()
    entries = []
    for bundle in bundles:
        for item in bundle["entry"]:
            if item["fullUrl"] in seen:
                continue
            seen.add(item["fullUrl"])
            entries.append(item)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def outcome_counts(request: dict[str, Any], response: dict[str, Any]) -> Counter[str]:
    """How many entries the server created, updated or left unchanged.

    Raises ValueError when the response does not answer every request entry.
    """
    answers = response.get("entry")
    if not isinstance(answers, list) or len(answers) != len(request["entry"]):
        raise ValueError("the transaction response does not answer every entry")
    counts: Counter[str] = Counter()
    for sent, answer in zip(request["entry"], answers, strict=True):
        counts[_outcome(sent["request"]["method"], answer.get("response") or {})] += 1
    return counts


def _outcome(method: str, response: dict[str, Any]) -> str:
    status = str(response.get("status", "")).split(" ", 1)[0]
    if status == "201":
        return "created"
    codes = {
        coding.get("code")
        for issue in (response.get("outcome") or {}).get("issue", [])
        for coding in (issue.get("details") or {}).get("coding", [])
        if coding.get("system") == _HAPI_CODES
    }
    if codes & _HAPI_UNCHANGED:
        return "unchanged"
    if method == "PUT":
        # A PUT that leaves version 1 cannot have changed anything.
        version = str(response.get("etag", "")).removeprefix("W/").strip('"')
        return "unchanged" if version == "1" else "updated"
    return "unchanged"  # 200 to a conditional create: it matched an existing resource
