"""Push a share to another provider's FHIR server (the physician's, or a new provider's):
``push_share`` (behind the physician-sharing consent) and ``push_plan`` (any plan, e.g. a
transfer the client asked for).

Two modes: ``document`` POSTs the patient-summary document Bundle to ``[base]/Bundle``;
``transaction`` re-creates the shared resources and photos with a Provenance naming the spa as
the source (``symfhir.sharing.push_bundle``). The target's CapabilityStatement is read first and
a target that cannot take what is sent is refused before anything of the record is read.
Retries (429 with Retry-After, 503), conflicts and refusals are the client layer's
(``symfhir.fhir``): every write here is a conditional create, so it is retried safely.

Every push attempt that got as far as sending is a disclosure AuditEvent on our own server
(recipient the physician or provider, purpose TREAT, or PATRQT for the client's own transfer),
a failed one too (``success=False``): the server may have acted on a request whose answer was
lost.

Where the push goes and how it signs in is ``symfhir.sharing.push_target`` (re-exported here).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from symfhir.audit import AuditTrail, DisclosureTo
from symfhir.errors import (
    FhirAuthError,
    FhirCapabilityError,
    FhirConflictError,
    FhirRequestError,
    FhirResponseError,
    FhirServerError,
    FhirTransportError,
    PushError,
    SharingError,
    SymfhirError,
)
from symfhir.fhir import (
    FhirClient,
    outcomes,
    redact,
)
from symfhir.fhir.paths import check_id
from symfhir.sharing.gate import SharePlan, plan_share, sharing_consent
from symfhir.sharing.package import SharePackage, build_package
from symfhir.sharing.push_bundle import Source, push_transaction, resources_of
from symfhir.sharing.push_target import PushTarget, open_target
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor

__all__ = [
    "MODES",
    "PushReport",
    "PushTarget",
    "needed_scope",
    "open_target",
    "push_plan",
    "push_share",
]

_FAILURES: dict[type[FhirServerError], str] = {
    FhirConflictError: "conflict",
    FhirAuthError: "not authorized",
    FhirResponseError: "not a FHIR answer",
    FhirRequestError: "refused",
    FhirTransportError: "not answered",
    FhirCapabilityError: "not capable",
}

Mode = Literal["document", "transaction"]
MODES: tuple[str, ...] = get_args(Mode)
SUMMARY_FILE = "patient-summary.json"
RECORDS_FILE = "records.json"


@dataclass(frozen=True)
class PushReport:
    """What a push sent and where: the target, the mode, who received it, resources sent per
    type (photos counted as Media), the target's ``Type/id`` for each of ours (the document:
    ``Bundle`` → where it landed), how many the target already had (a conditional create that
    matched), and what the plan covered but this mode does not carry."""

    target: str
    mode: str
    recipient: str
    sent: Mapping[str, int]
    ids: Mapping[str, str]
    unchanged: int = 0
    photos: int = 0
    not_sent: tuple[str, ...] = ()
    location: str | None = None

    @property
    def resources(self) -> int:
        return sum(self.sent.values())

    def lines(self) -> list[str]:
        """The report for people: one line each, no patient data."""
        kinds = ", ".join(f"{t} {n}" for t, n in sorted(self.sent.items()))
        out = [f"pushed to {self.target} as a {self.mode} for {self.recipient}: {kinds}"]
        if self.location:
            out.append(f"stored at {self.location}")
        if self.unchanged:
            out.append(f"{self.unchanged} already on the target (not created twice)")
        out.extend(f"not sent: {item}" for item in self.not_sent)
        return out


def push_share(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    target: PushTarget,
    scopes: Iterable[str],
    mode: str,
    start: date | None = None,
    end: date | None = None,
    now: datetime,
    audit: AuditTrail,
) -> PushReport:
    """Push what the client's active physician-sharing consent and ``scopes`` allow to the
    physician's FHIR server ``target``, as a ``document`` or a ``transaction``.

    Raises SharingError for a bad mode or id, NotAllowedError in a read-only session,
    ConsentMissing when no active consent covers it (nothing is sent; audited as refused),
    PushError when the target cannot take it or refuses it (audited as a failed disclosure).
    """
    try:
        check_id(patient_id, "patient id")
    except FhirRequestError:
        raise SharingError("patient: not a valid FHIR id") from None
    _check_mode(mode)
    actor.require(())
    try:
        consent = sharing_consent(client, actor, patient_id, now=now)
        plan = plan_share(consent, frozenset(scopes), start=start, end=end)
    except SharingError as exc:
        audit(
            "read",
            success=False,
            description=f"push to {target.host} refused: {exc}",
            resources=(f"Patient/{patient_id}",),
        )
        raise
    return push_plan(client, actor, plan, target=target, mode=mode, now=now, audit=audit)


def push_plan(
    client: FhirClient,
    actor: Actor,
    plan: SharePlan,
    *,
    target: PushTarget,
    mode: str,
    purpose: str = "TREAT",
    now: datetime,
    audit: AuditTrail,
    connect: Callable[[PushTarget, str], FhirClient] | None = None,
) -> PushReport:
    """Push what ``plan`` allows (already decided by the gate) to ``target``. ``purpose`` is
    the disclosure's (TREAT for a physician, PATRQT for the client's own transfer);
    ``connect(target, scope)`` opens the target's client (default ``open_target``).

    Raises SharingError for a bad mode, PushError when the target cannot take what is sent
    or refuses it, FhirServerError when our own server cannot be read.
    """
    _check_mode(mode)
    opener = connect or open_target
    whose = (f"Patient/{plan.patient_id}", plan.basis)
    with opener(target, target.scope or needed_scope(plan, mode)) as remote:
        try:
            caps = _capabilities(remote, target)
            binary = _check_capabilities(caps, mode)
        except PushError as exc:
            # Nothing of the record was read or sent: a refused push, not a disclosure.
            audit("read", success=False, description=f"push refused: {exc}", resources=whose)
            raise
        package = build_package(client, actor, plan.patient_id, plan, now=now)
        to = DisclosureTo(
            _recipient_name(plan, target), purpose, plan.recipient.reference, _disclosed(package)
        )
        try:
            if mode == "document":
                report = _push_document(remote, package, target, to)
            else:
                report = _push_transaction(
                    remote, package, target, to, now=now, binary=binary, caps=caps
                )
        except _Refused as exc:
            audit("read", success=False, description=f"push refused: {exc}", resources=whose)
            raise
        except (FhirServerError, PushError) as exc:
            reason = _reason(exc)
            audit(
                "read",
                success=False,
                description=f"push to {target.base_url} as a {mode} failed: {reason}",
                resources=whose,
                disclosure=to,
            )
            raise PushError(f"the push to {target.host} failed: {reason}") from exc
    audit(
        "read",
        description=(
            f"pushed to {target.base_url} as a {mode}: {report.resources} resources, "
            f"{report.photos} photos"
        ),
        resources=whose,
        disclosure=to,
    )
    return report


def needed_scope(plan: SharePlan, mode: str) -> str:
    """The Backend Services scope a push needs: the creates (and the searches a conditional
    create makes) of exactly the types it sends."""
    if mode == "document":
        return "system/Bundle.cs"
    types = set(plan.types) | {"Patient", "Provenance", "Organization"}
    if plan.photos:
        types |= {"Media", "Binary"}
    return " ".join(f"system/{t}.cs" for t in sorted(types))


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SharingError(f"mode: one of {', '.join(MODES)}")


def _capabilities(remote: FhirClient, target: PushTarget) -> Any:
    try:
        return remote.capabilities()
    except FhirServerError as exc:
        raise PushError(
            f"the target {target.host} did not give a usable CapabilityStatement: {_reason(exc)}"
        ) from exc


class _Refused(PushError):
    """The target cannot take what is about to be sent: nothing was sent."""


def _check_capabilities(caps: Any, mode: str) -> bool:
    """Refuse a target that cannot take this kind of push at all; whether photos can go up
    as Binary. The types a transaction holds are checked once it is built (``_require``)."""
    if mode == "document":
        if not caps.can("Bundle", "create"):
            raise _Refused("the target cannot create Bundle (needed to store the document)")
        return False
    if not caps.can_system("transaction"):
        raise _Refused("the target does not support transaction (needed to send the records)")
    _require(caps, {"Patient", "Provenance"})
    return caps.can("Binary", "create")


def _require(caps: Any, types: Iterable[str]) -> None:
    missing = sorted(t for t in set(types) if not caps.can(t, "create"))
    if missing:
        raise _Refused(f"the target cannot create {', '.join(missing)}")


def _push_document(
    remote: FhirClient, package: SharePackage, target: PushTarget, to: DisclosureTo
) -> PushReport:
    document = _json_file(package, SUMMARY_FILE)
    if document.get("resourceType") != "Bundle" or document.get("type") != "document":
        raise PushError("the patient summary is not a document Bundle")
    identifier = document.get("identifier") or {}
    condition = None
    if identifier.get("system") and identifier.get("value"):
        condition = urlencode({"identifier": f"{identifier['system']}|{identifier['value']}"})
    written = remote.create(document, if_none_exist=condition)
    kinds = Counter(
        str(r.get("resourceType")) for _, r in resources_of(document) if r.get("resourceType")
    )
    left = []
    if len(package.files) > 1:
        beyond = sorted(set(package.plan.scopes) - {"summary"})
        if beyond:
            left.append(f"{', '.join(beyond)} (a document carries the summary only)")
    if package.photos:
        left.append(f"{package.photos} photos (a document carries the summary only)")
    where = f"Bundle/{written.id}"
    return PushReport(
        target=target.base_url,
        mode="document",
        recipient=to.recipient,
        sent=dict(kinds),
        ids={"Bundle": where},
        unchanged=1 if written.status == "unchanged" else 0,
        not_sent=tuple(left),
        location=f"{target.base_url}/{where}",
    )


def _push_transaction(
    remote: FhirClient,
    package: SharePackage,
    target: PushTarget,
    to: DisclosureTo,
    *,
    now: datetime,
    binary: bool,
    caps: Any,
) -> PushReport:
    # records.json holds every shared resource the summary was made of (with their own ids);
    # the summary's resources are copies under new ids, so only one of the two is sent.
    has_records = any(f.name == RECORDS_FILE for f in package.files)
    entries = resources_of(_json_file(package, RECORDS_FILE if has_records else SUMMARY_FILE))
    photos = [
        json.loads(f.read()) for f in package.files if f.name not in (SUMMARY_FILE, RECORDS_FILE)
    ]
    spa = load_spa()
    source = Source(spa.name, spa.identifier_system, spa.identifier_value, spa.identifier_base)
    transaction = push_transaction(entries, photos, source=source, now=now, binary=binary)
    _require(caps, (e["resource"]["resourceType"] for e in transaction.bundle["entry"]))
    answer = remote.transaction(transaction.bundle)
    ids: dict[str, str] = {}
    sent: Counter[str] = Counter()
    unchanged = 0
    for what, result in zip(transaction.sources, outcomes(transaction.bundle, answer), strict=True):
        if isinstance(result, FhirServerError):
            raise PushError(f"the target refused {what.split('/')[0]}: {_reason(result)}")
        ids[what] = f"{result.resource_type}/{result.id}"
        if result.resource_type != "Provenance" and not what.startswith("Binary for "):
            sent[result.resource_type] += 1
        unchanged += result.status == "unchanged"
    return PushReport(
        target=target.base_url,
        mode="transaction",
        recipient=to.recipient,
        sent=dict(sent),
        ids=ids,
        unchanged=unchanged,
        photos=len(photos),
    )


def _json_file(package: SharePackage, name: str) -> dict[str, Any]:
    for shared in package.files:
        if shared.name == name:
            try:
                value = json.loads(shared.read())
            except ValueError:
                raise PushError(f"{name}: not JSON") from None
            if not isinstance(value, dict):
                raise PushError(f"{name}: not a FHIR resource")
            return value
    raise PushError(f"the share package has no {name}")


def _disclosed(package: SharePackage) -> tuple[str, ...]:
    types = set(package.counts) | ({"Media"} if package.photos else set())
    return tuple(sorted(t for t in types if t and t[:1].isupper() and t.isalpha()))


def _recipient_name(plan: SharePlan, target: PushTarget) -> str:
    name = plan.recipient.name.strip() or "the recipient"
    return f"{name} (FHIR server {target.host})"


def _reason(exc: SymfhirError) -> str:
    """Why a push failed, in words safe for the page, the command line and the audit: a
    server's diagnostics may echo record values, so only the operation, the status, the kind
    of failure and each issue's code and (redacted) location are kept."""
    if not isinstance(exc, FhirServerError):
        return str(exc)
    if not exc.body and not exc.issues:
        return exc.log_text  # symfhir's own words (a timeout, a refused connection)
    kind = _FAILURES.get(type(exc), "failed")
    head = f"{exc.operation}: {kind}" + (f" (HTTP {exc.status})" if exc.status else "")
    issues = [
        f"{code or 'error'}" + (f" at {redact(expression)}" if expression else "")
        for _severity, code, _diagnostics, expression in exc.issues[:3]
    ]
    return "; ".join([head, *issues])
