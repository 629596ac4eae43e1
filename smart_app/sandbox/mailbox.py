"""`/mail`: the caught mail and text messages of the local stack, as MailHog or Mailpit show
them — a list, one message opened, its links clickable. Development only, like the sandbox.

It reads the mail catcher's Maildir (``SANDBOX_MAIL_DIR``, see ``symfhir.notify.catcher``)
and the SMS outbox (``SANDBOX_SMS_OUTBOX``, see ``symfhir.notify.sms``). A message's HTML is
shown in a sandboxed frame: no scripts, links open in a new tab.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, render_template
from markupsafe import Markup, escape

from symfhir.notify.catcher import read_mailbox, read_message
from symfhir.notify.sms import read_outbox

bp = Blueprint("sandbox_mailbox", __name__)

_URL = re.compile(r"https?://[^\s<>\"'()]+[^\s<>\"'().,;:!?]")
_KEY = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def linkified(text: str) -> Markup:
    """``text`` escaped, with each http(s) URL in it a link (opening in a new tab)."""
    out = Markup("")
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        out += escape(text[last : match.start()])
        out += Markup('<a href="{0}" target="_blank" rel="noreferrer">{0}</a>').format(url)
        last = match.end()
    return out + escape(text[last:])


def _mail_dir() -> str | None:
    return current_app.config.get("SANDBOX_MAIL_DIR") or None


def _outbox() -> str | None:
    return current_app.config.get("SANDBOX_SMS_OUTBOX") or None


@bp.get("/mail")
def mail_list() -> str:
    folder = _mail_dir()
    messages = read_mailbox(folder) if folder else []
    return render_template(
        "sandbox/mail_list.html",
        configured=bool(folder),
        messages=messages,
        sms_configured=bool(_outbox()),
        sms_count=len(read_outbox(_outbox())) if _outbox() else 0,
    )


@bp.get("/mail/sms")
def sms_list() -> str:
    path = _outbox()
    texts = read_outbox(path) if path else []
    return render_template(
        "sandbox/mail_sms.html",
        configured=bool(path),
        texts=[{**t, "body_html": linkified(t.get("body", ""))} for t in texts],
    )


@bp.get("/mail/<key>")
def mail_message(key: str) -> str:
    folder = _mail_dir()
    if not folder or not _KEY.match(key):
        abort(404)
    mail = read_message(folder, key)
    if mail is None:
        abort(404)
    html = mail.html
    framed = None
    if html is not None:
        # Links inside the frame open in a new tab (the frame may not navigate the page).
        framed = '<base target="_blank">' + html
    return render_template(
        "sandbox/mail_message.html", mail=mail, text_html=linkified(mail.text), framed=framed
    )
