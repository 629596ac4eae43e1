"""Retention plan (policy §6, §9, §11): which of a client's resources may be deleted now, and
until when the others are kept, by the rules of ``mappings/retention.yaml``.

Pure: resources (FHIR JSON dicts) and ``now`` in, a ``Plan`` out. The plan names resources by
``Type/id`` with a rule name and dates only, never their content, so it may be stored and
shown as it is. Deny by default: a resource no rule matches is kept (``NO_RULE``).

The rules are read by ``retention_rules``; what references what, and the order of the
deletions, is ``deletion_order``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from symfhir.privacy.deletion_order import references_of, referrers_first
from symfhir.privacy.retention_rules import Keep, RetentionPolicy, Rule, load_retention

CONSENT_KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/consent-kind"

DELETE = "delete"
KEEP = "keep"
#: The rule name of a resource no rule allows deleting.
NO_RULE = "no-rule"
#: The rule name of a resource kept because a kept resource still references it.
REFERENCED = "referenced-by-kept"
#: Sorts after every real date: "kept indefinitely" while comparing keep dates.
_FOREVER = date.max


@dataclass(frozen=True)
class PlanItem:
    """What happens to one resource: ``delete`` now, or ``keep`` until ``until`` (None:
    indefinitely, or no date could be set) because of ``rule``; ``referenced_by`` names the
    kept resource holding it when the rule is ``REFERENCED``."""

    reference: str
    action: str
    rule: str
    until: date | None = None
    referenced_by: str | None = None

    def line(self) -> str:
        """The item as one PHI-free line of a report."""
        if self.action == DELETE:
            return f"{self.reference}: delete now ({self.rule})"
        if self.rule == NO_RULE:
            return f"{self.reference}: kept: no rule allows deleting it"
        when = f"until {self.until.isoformat()}" if self.until else "indefinitely"
        why = f"referenced by {self.referenced_by}" if self.referenced_by else self.rule
        return f"{self.reference}: kept {when} because {why}"


@dataclass(frozen=True)
class Plan:
    """The plan for one client: every item, the deletions in an order that honours references
    (referrers first), and the references to drop from kept resources (``unlink``: kept
    resource -> the references it stops naming) before those deletions, the elements to
    remove from kept resources (``minimize``: kept resource -> the elements it holds), and the
    files to remove, after the deletions, from resources kept only because others name them
    (``strip``: resource -> the dotted paths it holds)."""

    items: tuple[PlanItem, ...]
    order: tuple[str, ...]
    unlink: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    minimize: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    last_treatment: date | None = None
    strip: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def kept(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.action == KEEP)

    def next_date(self) -> date | None:
        """The earliest date something kept may go (None when nothing is kept to a date)."""
        dates = [i.until for i in self.kept if i.until is not None]
        return min(dates) if dates else None


def add_years(day: date, years: int) -> date:
    """``day`` ``years`` later; 29 February becomes 1 March (kept a day longer, never less)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def local_day(value: object, zone: ZoneInfo) -> date | None:
    """The spa-local day of a FHIR date/dateTime/instant; None when absent or unreadable.
    A year or year-month counts as its last day (kept longer, never less)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 4:
            return date(int(value), 12, 31)
        if len(value) == 7:
            year, month = int(value[:4]), int(value[5:7])
            nxt = date(year + month // 12, month % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1)
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(zone).date() if moment.tzinfo else moment.date()


def _at(resource: Mapping[str, Any], path: str) -> object:
    node: object = resource
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _latest(resource: Mapping[str, Any], paths: Sequence[str], zone: ZoneInfo) -> date | None:
    days = [d for p in paths if (d := local_day(_at(resource, p), zone)) is not None]
    return max(days) if days else None


def consent_kind(consent: Mapping[str, Any]) -> str | None:
    """The consent-kind code of a Consent's category (mappings/consent-kinds.yaml)."""
    for category in consent.get("category") or []:
        for coding in (category or {}).get("coding") or []:
            if coding.get("system") == CONSENT_KIND_SYSTEM and coding.get("code"):
                return str(coding["code"])
    return None


def _given_days(resources: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> dict[str, date]:
    """Per consent kind, the earliest day it was given (active and permitting, or given and
    later withdrawn): what a photo taken that day or later was consented for."""
    out: dict[str, date] = {}
    for consent in resources:
        if consent.get("resourceType") != "Consent":
            continue
        status = consent.get("status")
        permit = (consent.get("provision") or {}).get("type", "permit") == "permit"
        if not (status == "inactive" or (status == "active" and permit)):
            continue
        kind = consent_kind(consent)
        day = local_day(consent.get("dateTime"), zone)
        if kind and day and (kind not in out or day < out[kind]):
            out[kind] = day
    return out


def _photo_use(
    media: Mapping[str, Any], given: Mapping[str, date], policy: RetentionPolicy, zone: ZoneInfo
) -> str | None:
    taken = local_day(media.get("createdDateTime"), zone)
    if taken is None:
        return None
    uses = {
        use
        for use, kinds in policy.photo_uses.items()
        if any(k in given and given[k] <= taken for k in kinds)
    }
    # A photo that serves the record and marketing alike is a medical record.
    for use in ("clinical", "marketing"):
        if use in uses:
            return use
    return None


def _matches(
    rule: Rule, resource: Mapping[str, Any], photo_use: str | None
) -> tuple[bool, str | None]:
    """(matches, follows) of one rule for one resource."""
    condition = rule.types.get(str(resource.get("resourceType")))
    if condition is None:
        return False, None
    if "consent_kind" in condition:
        return consent_kind(resource) in condition["consent_kind"], None
    if "photo_use" in condition:
        return photo_use in condition["photo_use"], None
    return True, condition.get("follows")


@dataclass
class _State:
    rule: str
    until: date | None  # None: may go now; _FOREVER: kept indefinitely
    referenced_by: str | None = None


def plan_deletion(
    resources: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    zone: ZoneInfo,
    policy: RetentionPolicy | None = None,
) -> Plan:
    """The deletion plan for one client's resources at ``now`` (see the module docstring).

    Keep dates are the last treatment's spa-local day plus the rule's years; a resource may
    go on that day. Whatever a kept resource references (other than through an ``unlink``
    element) is kept as long as it. Raises ConfigError for unusable rules.
    """
    policy = policy or load_retention()
    today = now.astimezone(zone).date()
    by_ref: dict[str, Mapping[str, Any]] = {}
    for resource in resources:
        key = f"{resource.get('resourceType')}/{resource.get('id')}"
        by_ref[key] = resource
    given = _given_days(by_ref.values(), zone)
    last = _last_treatment(by_ref.values(), policy, zone)

    states: dict[str, _State] = {}
    followers: list[tuple[str, str]] = []
    dated_basis: date | None = last
    if dated_basis is None:
        dated_basis = _clinical_basis(by_ref.values(), policy, zone)
    for key, resource in by_ref.items():
        use = _photo_use(resource, given, policy, zone) if key.startswith("Media/") else None
        state: _State | None = None
        for rule in policy.rules:
            matched, follows = _matches(rule, resource, use)
            if not matched:
                continue
            if follows:
                followers.append((key, follows))
                state = _State(rule.name, None)
                break
            candidate = _State(rule.name, _keep_until(rule.keep, dated_basis, resource, zone))
            if state is None or _longer(candidate.until, state.until):
                state = candidate
        states[key] = state or _State(NO_RULE, _FOREVER)

    strong: dict[str, list[str]] = {}
    weak: dict[str, list[str]] = {}
    attached: dict[str, list[str]] = {}
    for key, resource in by_ref.items():
        elements = policy.unlink.get(str(resource.get("resourceType")), frozenset())
        strong[key], weak[key], attached[key] = references_of(resource, elements)
    _settle_followers(followers, states, strong, weak, attached)
    own = dict(states)

    def deletable(state: _State) -> bool:
        return state.until is None or (state.until != _FOREVER and state.until <= today)

    def stub(key: str) -> bool:
        """Kept only because another kept resource names it, though its own rule lets it
        go: it keeps its place, not its files (``strip``), so it holds no Binary."""
        return (
            states[key].rule == REFERENCED
            and deletable(own[key])
            and str(by_ref[key].get("resourceType")) in policy.strip
        )

    # Pin: whatever a kept resource references stays as long as it (longest holder wins).
    queue = deque(k for k, s in states.items() if not deletable(s))
    while queue:
        holder = queue.popleft()
        until = states[holder].until
        held = strong[holder] if stub(holder) else strong[holder] + attached[holder]
        for target in held:
            state = states.get(target)
            if state is None or target == holder:
                continue
            if deletable(state) or _longer(until, state.until):
                states[target] = _State(REFERENCED, until, holder)
                queue.append(target)

    items = []
    for key, state in states.items():
        if deletable(state):
            items.append(PlanItem(key, DELETE, state.rule))
        else:
            until = None if state.until == _FOREVER else state.until
            items.append(PlanItem(key, KEEP, state.rule, until, state.referenced_by))
    going = {i.reference for i in items if i.action == DELETE}
    # A kept resource stops naming what goes, unless that would leave it naming nothing
    # (then the server refuses the deletion, and the report says the item was kept).
    unlink = {
        key: tuple(dict.fromkeys(r for r in weak[key] if r in going))
        for key in states
        if key not in going
        and any(r in going for r in weak[key])
        and any(r not in going for r in weak[key])
    }
    minimize = {}
    for key in states:
        elements = policy.minimize.get(str(by_ref[key].get("resourceType")), ())
        held = tuple(e for e in elements if by_ref[key].get(e))
        if key not in going and held:
            minimize[key] = held
    strip = {}
    for key in states:
        paths = policy.strip.get(str(by_ref[key].get("resourceType")), ())
        present = tuple(p for p in paths if has_path(by_ref[key], p))
        if key not in going and present and stub(key):
            strip[key] = present
    order = referrers_first(going, strong, weak, attached)
    return Plan(tuple(items), order, unlink, minimize, last, strip)


def has_path(node: Any, path: str) -> bool:
    """True when a dotted path (lists traversed) holds a value anywhere in ``node``."""
    head, _, rest = path.partition(".")
    for item in node if isinstance(node, list) else [node]:
        if isinstance(item, Mapping) and head in item and (not rest or has_path(item[head], rest)):
            return True
    return False


def _last_treatment(
    resources: Iterable[Mapping[str, Any]], policy: RetentionPolicy, zone: ZoneInfo
) -> date | None:
    days = [
        d
        for r in resources
        if (paths := policy.last_treatment.get(str(r.get("resourceType"))))
        and (d := _latest(r, paths, zone)) is not None
    ]
    return max(days) if days else None


def _clinical_basis(
    resources: Iterable[Mapping[str, Any]], policy: RetentionPolicy, zone: ZoneInfo
) -> date | None:
    """The latest dated clinical record; a record with no date counts by its last update."""
    days = []
    for resource in resources:
        paths = policy.clinical_dates.get(str(resource.get("resourceType")))
        if paths is None:
            continue
        day = _latest(resource, paths, zone) or local_day(
            (resource.get("meta") or {}).get("lastUpdated"), zone
        )
        if day is not None:
            days.append(day)
    return max(days) if days else None


def _keep_until(
    keep: Keep, basis: date | None, resource: Mapping[str, Any], zone: ZoneInfo
) -> date | None:
    if keep.forever:
        return _FOREVER
    if keep.years is None:
        return None
    if basis is None:
        # No dated record at all: its own last update, else kept indefinitely.
        basis = local_day((resource.get("meta") or {}).get("lastUpdated"), zone)
        if basis is None:
            return _FOREVER
    return add_years(basis, keep.years)


def _longer(a: date | None, b: date | None) -> bool:
    return (a or date.min) > (b or date.min)


def _settle_followers(
    followers: list[tuple[str, str]],
    states: dict[str, _State],
    strong: Mapping[str, list[str]],
    weak: Mapping[str, list[str]],
    attached: Mapping[str, list[str]],
) -> None:
    """A Provenance takes the longest keep of its targets, under its own rule; a Binary the
    longest keep and the rule of what attaches it (a photo, a signed form). One with nothing
    known to follow is kept as long as the longest-kept resource of the client."""
    holders: dict[str, list[str]] = {}
    for key, binaries in attached.items():
        for binary in binaries:
            holders.setdefault(binary, []).append(key)
    longest = max((s.until for s in states.values() if s.until), default=None)
    for key, follows in followers:
        sources = holders.get(key, []) if follows == "attachment" else weak[key] + strong[key]
        known = [states[s] for s in sources if s in states and s != key]
        if not known:
            states[key] = _State(states[key].rule, longest or _FOREVER)
            continue
        best = max(known, key=lambda s: s.until or date.min)
        rule = best.rule if follows == "attachment" else states[key].rule
        states[key] = _State(rule, best.until)
