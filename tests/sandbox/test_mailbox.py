"""The sandbox EHR's /mail page: the mail the local catcher caught (list, one message, links
clickable, HTML framed without scripts) and the SMS outbox."""

from __future__ import annotations

import re
from html import unescape

import pytest
from flask import Flask

from smart_app.sandbox import create_sandbox
from symfhir.notify.catcher import MailCatcher
from symfhir.notify.email import EmailSender
from symfhir.notify.sms import OutboxSmsSender
from tests.sandbox.conftest import BASE, DEAD_UPSTREAM, client_registrations

STATUS = "https://portal.example.com/status/Zq3-abc_DEF?x=1&y=2"


def sandbox(rsa_key, ec_key, **settings) -> Flask:
    return create_sandbox(
        {
            "TESTING": True,
            "SANDBOX_BASE_URL": BASE,
            "SANDBOX_FHIR_UPSTREAM": DEAD_UPSTREAM,
            "SANDBOX_CLIENTS": client_registrations(rsa_key, ec_key),
            **settings,
        }
    )


@pytest.fixture
def mail_app(rsa_key, ec_key, smtp_catcher: MailCatcher, tmp_path) -> Flask:
    return sandbox(
        rsa_key,
        ec_key,
        SANDBOX_MAIL_DIR=str(smtp_catcher.directory),
        SANDBOX_SMS_OUTBOX=str(tmp_path / "sms.jsonl"),
    )


def test_caught_mail_is_listed_newest_first_and_opens(mail_app, smtp_catcher) -> None:
    sender = EmailSender.from_config(smtp_catcher.config(), env={})
    sender.send("ann.lee@example.com", "Your verification code", "Code: 111111")
    sender.send(
        "bo@example.com",
        "Your request <received>",
        f"Hello,\nfollow your request at {STATUS}.\n<script>alert(1)</script>\n",
        html=f'<p>Open <a href="{STATUS}">your status page</a></p><script>alert(2)</script>',
        headers={"List-Unsubscribe": "<https://portal.example.com/u/t>"},
    )
    smtp_catcher.wait_for(2)
    client = mail_app.test_client()
    page = client.get("/mail").get_data(as_text=True)
    table = page[page.index('<table id="mail">') :]
    subjects = re.findall(r'<a href="/mail/([^"]+)">([^<]*)</a>', table)
    assert [unescape(s) for _, s in subjects] == [
        "Your request <received>",
        "Your verification code",
    ]
    assert "&lt;received&gt;" in page

    opened = client.get(f"/mail/{subjects[0][0]}")
    assert opened.status_code == 200
    body = opened.get_data(as_text=True)
    # The text's URL is a link (its & escaped as HTML requires), the script only text.
    link = STATUS.replace("&", "&amp;")
    assert f'<a href="{link}" target="_blank" rel="noreferrer">{link}</a>.' in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>" not in body
    # The HTML part is framed with no scripts allowed, its links opening a new tab.
    frame = re.search(r'<iframe id="html"[^>]*sandbox="([^"]*)"[^>]*srcdoc="([^"]*)"', body)
    assert frame is not None and "allow-scripts" not in frame.group(1)
    framed = unescape(frame.group(2))
    assert framed.startswith('<base target="_blank">') and f'<a href="{STATUS}">' in framed
    assert "https://portal.example.com/u/t" in body


def test_unknown_or_odd_keys_are_404(mail_app) -> None:
    client = mail_app.test_client()
    for key in ("nope", "..%2F..%2Fetc%2Fpasswd", "a" * 300):
        assert client.get(f"/mail/{key}").status_code == 404


def test_empty_and_unconfigured(rsa_key, ec_key, mail_app) -> None:
    assert 'id="no-mail"' in mail_app.test_client().get("/mail").get_data(as_text=True)
    assert 'id="no-sms"' in mail_app.test_client().get("/mail/sms").get_data(as_text=True)
    bare = sandbox(rsa_key, ec_key).test_client()
    assert "No mail catcher configured" in bare.get("/mail").get_data(as_text=True)
    assert "No SMS outbox configured" in bare.get("/mail/sms").get_data(as_text=True)
    assert bare.get("/mail/anything").status_code == 404


def test_the_sms_outbox_is_shown_with_links(mail_app, tmp_path) -> None:
    outbox = OutboxSmsSender(tmp_path / "sms.jsonl")
    outbox.send("(337) 555-0101", "Your code is 222222")
    outbox.send("(337) 555-0102", f"Reply STOP to opt out. Status: {STATUS} <b>")
    client = mail_app.test_client()
    assert "Text messages (2)" in client.get("/mail").get_data(as_text=True)
    page = client.get("/mail/sms").get_data(as_text=True)
    assert page.index("+13375550102") < page.index("+13375550101")
    link = STATUS.replace("&", "&amp;")
    assert f'<a href="{link}" target="_blank" rel="noreferrer">' in page
    assert "&lt;b&gt;" in page and "222222" in page
