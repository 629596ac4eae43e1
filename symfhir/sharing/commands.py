"""``symfhir share``: SMART Health Links to a client's records for their physician (create,
list, revoke, log), a push to the physician's FHIR server, and a transfer to another provider
answering a portability request.

Secrets never go on the command line (it shows in process lists and shell history): a
passcode or a bearer token is read from the environment variable named by
``--passcode-env`` / ``--bearer-token-env``; Backend Services credentials are a client id
and a private key file. Options are never abbreviated, so ``--passcode 1234`` is an error,
not the name of a variable.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symfhir.command_options import (
    EXIT_OK,
    add_server_options,
    add_user_option,
    open_client,
)
from symfhir.errors import SharingError

if TYPE_CHECKING:
    from symfhir.sharing.links import NewLink
    from symfhir.sharing.push import PushTarget

#: Kept in step with symfhir.sharing.push.MODES (a test checks): importing it here would load
#: the sharing modules for every ``symfhir`` command.
MODES = ("document", "transaction")


def register(sub: Any) -> None:
    """Add the ``share`` subcommand and its actions."""
    p = sub.add_parser(
        "share",
        help="share a client's records with their physician (SMART Health Links, push) or "
        "transfer them to another provider",
        epilog="What may be shared is decided by the client's active physician-sharing "
        "consent (deny by default). Exit codes: 0 done, 2 refused or failed (nothing made).",
    )
    actions = p.add_subparsers(dest="action", required=True)

    c = _action(actions, "create", "make a SMART Health Link; print it, write its QR code")
    _patient(c)
    _scopes(c)
    c.add_argument("--start", type=date.fromisoformat, help="records from this day (YYYY-MM-DD)")
    c.add_argument("--end", type=date.fromisoformat, help="records up to this day (YYYY-MM-DD)")
    _link_options(c)
    c.add_argument("--max-accesses", type=int, help="how many times the link may be opened")
    c.add_argument(
        "--single-file",
        action="store_true",
        help="flag U: the summary alone, fetched directly (no passcode possible)",
    )
    c.add_argument("--long-term", action="store_true", help="flag L: a long-term link")
    _server(c)
    c.set_defaults(run=_create)

    ls = _action(actions, "list", "the client's links, their status and accesses")
    _patient(ls)
    ls.set_defaults(run=_list)

    r = _action(actions, "revoke", "revoke one of the client's links at once")
    _patient(r)
    r.add_argument("link_id", help="the link's id (from `symfhir share list`)")
    r.add_argument("--reason", default="revoked by a practitioner", help="kept with the link")
    _server(r)
    r.set_defaults(run=_revoke)

    g = _action(actions, "log", "every access to the client's links")
    _patient(g)
    g.add_argument("link_id", nargs="?", help="only this link")
    g.set_defaults(run=_log)

    u = _action(actions, "push", "push to the physician's FHIR server")
    _patient(u)
    _scopes(u)
    u.add_argument("--start", type=date.fromisoformat, help="records from this day")
    u.add_argument("--end", type=date.fromisoformat, help="records up to this day")
    _target(u, required=True)
    _server(u)
    u.set_defaults(run=_push)

    t = _action(
        actions,
        "transfer",
        "answer a verified portability request: push the full record to the new "
        "provider (--to) or make a long-term link (--link)",
    )
    t.add_argument("--task", required=True, help="the portability request's Task id")
    t.add_argument("--recipient", help="the new provider, when the request does not name it")
    _target(t, required=False)
    t.add_argument("--link", action="store_true", help="make a long-term link instead of a push")
    _link_options(t)
    _server(t)
    t.set_defaults(run=_transfer)

    pg = _action(
        actions,
        "purge",
        "daily clean-up: expired file tickets, and the encrypted files of links expired or "
        "revoked more than --keep-days ago (their records and access logs stay)",
    )
    pg.add_argument("--keep-days", type=int, default=30, help="days a dead link's files stay")
    pg.set_defaults(run=_purge)


def _action(actions: Any, name: str, text: str) -> argparse.ArgumentParser:
    # No abbreviations: "--passcode 1234" must fail, not name a variable called 1234.
    return actions.add_parser(name, help=text, allow_abbrev=False)


def _patient(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patient", required=True, help="the client's Patient id on the server")


def _scopes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scope",
        action="append",
        default=[],
        help="summary (always), intake, treatments, photos, full; repeat for several",
    )


def _link_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", help="a short label the physician sees (at most 80 characters)")
    p.add_argument(
        "--passcode-env",
        metavar="NAME",
        help="flag P: read the passcode from environment variable NAME",
    )
    p.add_argument("--days", type=int, help="the link expires after this many days")
    p.add_argument("--qr-png", type=Path, help="write the QR code (PNG) here")
    p.add_argument("--qr-svg", type=Path, help="write the QR code (SVG) here")


def _target(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--to", required=required, metavar="URL", help="the target FHIR base URL")
    p.add_argument("--mode", choices=MODES, default="transaction", help="default transaction")
    p.add_argument(
        "--bearer-token-env",
        metavar="NAME",
        help="read the target's bearer token from environment variable NAME",
    )
    p.add_argument("--client-id", help="SMART Backend Services client id at the target")
    p.add_argument("--key", type=Path, help="the Backend Services private key (PEM, RS384/ES384)")
    p.add_argument("--key-id", help="the key's kid (default: its thumbprint)")
    p.add_argument("--token-url", help="default: the target's .well-known/smart-configuration")
    p.add_argument("--token-scope", help="default: exactly the creates the push needs")


def _server(p: argparse.ArgumentParser) -> None:
    add_user_option(p)
    add_server_options(p)


# -- handlers --------------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    from symfhir.audit import ClientAuditTrail
    from symfhir.sharing.workflow import LinkSettings, create_share
    from symfhir.store import Store
    from symfhir.workspace.actor import Actor

    now = _now()
    passcode = _secret(args.passcode_env, "--passcode-env")
    store = Store.from_env()
    with open_client(args) as client:
        created = create_share(
            client,
            Actor(args.user),
            args.patient,
            store=store,
            scopes=_chosen(args.scope),
            start=args.start,
            end=args.end,
            label=args.label,
            passcode=passcode,
            expires_at=_expiry(args.days, now),
            max_accesses=args.max_accesses,
            single_file=args.single_file,
            long_term=args.long_term,
            links=LinkSettings.from_env(),
            now=now,
            audit=ClientAuditTrail(client, args.patient, args.user),
        )
    kinds = ", ".join(f"{t} {n}" for t, n in sorted(created.counts.items()) if n)
    print(
        f"link {created.link.link_id} for {created.plan.recipient.name}: {kinds}, "
        f"{created.photos} photos",
        file=sys.stderr,
    )
    _print_link(created.link, args)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from symfhir.sharing.workflow import list_shares
    from symfhir.store import Store
    from symfhir.workspace.actor import Actor

    records = list_shares(Store.from_env(), Actor(None), args.patient, now=_now())
    for record in records:
        expires = _when(record.expires_at)
        print(
            f"{record.link_id}  {record.status:<8} flags {record.flags or '-':<3} "
            f"created {_when(record.created_at)}  expires {expires}  "
            f"for {record.recipient.name}  accesses {record.access_count}"
            f"{'/' + str(record.max_accesses) if record.max_accesses else ''}  "
            f"wrong passcodes {record.failures}/{record.max_failures}"
            + (f"  {record.label}" if record.label else "")
        )
    print(f"{len(records)} links", file=sys.stderr)
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    from symfhir.audit import ClientAuditTrail
    from symfhir.sharing.workflow import revoke_share
    from symfhir.store import Store
    from symfhir.workspace.actor import Actor

    store = Store.from_env()
    with open_client(args) as client:
        revoke_share(
            store,
            Actor(args.user),
            args.patient,
            args.link_id,
            reason=args.reason,
            now=_now(),
            audit=ClientAuditTrail(client, args.patient, args.user),
        )
    print(f"revoked {args.link_id}")
    return EXIT_OK


def _log(args: argparse.Namespace) -> int:
    from symfhir.sharing.workflow import share_log
    from symfhir.store import Store
    from symfhir.workspace.actor import Actor

    accesses = share_log(Store.from_env(), Actor(None), args.patient, args.link_id, now=_now())
    for access in accesses:
        print(
            f"{_when(access.when, 'seconds')}  {access.link_id}  "
            f"{access.outcome:<15} {access.recipient}"
        )
    print(f"{len(accesses)} accesses", file=sys.stderr)
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    from symfhir.sharing.links import purge_share_links
    from symfhir.store import Store

    if args.keep_days < 0:
        raise SharingError("--keep-days: must be 0 or more")
    files = purge_share_links(Store.from_env(), now=_now(), keep=timedelta(days=args.keep_days))
    print(f"purged the files of {files} dead links")
    return EXIT_OK


def _push(args: argparse.Namespace) -> int:
    from symfhir.audit import ClientAuditTrail
    from symfhir.sharing.push import push_share
    from symfhir.workspace.actor import Actor

    target = target_of(args)
    with open_client(args) as client:
        report = push_share(
            client,
            Actor(args.user),
            args.patient,
            target=target,
            scopes=_chosen(args.scope),
            mode=args.mode,
            start=args.start,
            end=args.end,
            now=_now(),
            audit=ClientAuditTrail(client, args.patient, args.user),
        )
    for line in report.lines():
        print(line)
    return EXIT_OK


def _transfer(args: argparse.Namespace) -> int:
    from symfhir.privacy.audit import RequestAuditTrail
    from symfhir.sharing.transfer import transfer_request
    from symfhir.sharing.workflow import LinkSettings
    from symfhir.store import Store
    from symfhir.workspace.actor import Actor

    if bool(args.to) == bool(args.link):
        raise SharingError("transfer: give --to URL (a push) or --link (a long-term link)")
    now = _now()
    target = target_of(args) if args.to else None
    passcode = _secret(args.passcode_env, "--passcode-env")
    store = Store.from_env() if args.link else None
    with open_client(args) as client:
        done = transfer_request(
            client,
            Actor(args.user),
            args.task,
            target=target,
            mode=args.mode,
            recipient=args.recipient,
            store=store,
            links=LinkSettings.from_env() if args.link else None,
            label=args.label,
            passcode=passcode,
            expires_at=_expiry(args.days, now),
            now=now,
            audit=RequestAuditTrail(client, args.user),
        )
    print(f"request Task/{done.request.task_id}: {done.request.request.business_status}")
    if done.report is not None:
        for line in done.report.lines():
            print(line)
    if done.link is not None:
        _print_link(done.link, args)
    return EXIT_OK


# -- helpers ---------------------------------------------------------------------------------


def target_of(args: argparse.Namespace) -> PushTarget:
    """The push target of ``--to`` and its credentials. Raises SharingError."""
    from symfhir.sharing.push import PushTarget

    token = _secret(args.bearer_token_env, "--bearer-token-env")
    if args.key is not None and not args.client_id:
        raise SharingError("--key needs --client-id")
    return PushTarget(
        base_url=args.to,
        bearer_token=token,
        client_id=args.client_id,
        private_key_path=args.key,
        token_url=args.token_url,
        scope=args.token_scope,
        key_id=args.key_id,
    )


def _print_link(link: NewLink, args: argparse.Namespace) -> None:
    expiry = _when(link.expires_at) if link.expires_at else "never"
    print(f"link id   {link.link_id}")
    print(f"flags     {link.flags or '-'}")
    print(f"expires   {expiry}")
    print(f"shlink    {link.shlink}")
    print(f"viewer    {link.viewer_url}")
    if args.qr_png is not None:
        args.qr_png.write_bytes(link.qr_png)
        print(f"QR code (PNG) written to {args.qr_png}", file=sys.stderr)
    if args.qr_svg is not None:
        args.qr_svg.write_text(link.qr_svg, encoding="utf-8")
        print(f"QR code (SVG) written to {args.qr_svg}", file=sys.stderr)


def _secret(env_name: str | None, option: str) -> str | None:
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if not value:
        # Not echoed: a secret typed where the variable's name belongs must not reach a log.
        raise SharingError(f"{option}: the environment variable it names is not set or empty")
    return value


def _chosen(scopes: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(["summary", *(s.strip() for s in scopes if s.strip())]))


def _expiry(days: int | None, now: datetime) -> datetime | None:
    if days is None:
        return None
    if days < 1:
        raise SharingError("--days: at least 1")
    return now + timedelta(days=days)


def _now() -> datetime:
    from symfhir.spa import load_spa

    return datetime.now(load_spa().zone)


def _when(moment: datetime, timespec: str = "minutes") -> str:
    """An instant as the spa's local time (the store keeps UTC): one clock in every output."""
    from symfhir.spa import load_spa

    return moment.astimezone(load_spa().zone).isoformat(timespec=timespec)
