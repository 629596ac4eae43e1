"""E-mail over real SMTP to the local catcher (aiosmtpd): plain, STARTTLS with login, implicit
TLS, the configuration path, and failures that name the server, never the recipient."""

from __future__ import annotations

import logging
import socket

import pytest

from symfhir.errors import ConfigError, DeliveryError, RecordError
from symfhir.notify.catcher import MailCatcher, free_port
from symfhir.notify.email import EmailSender
from tests.notify.conftest import TlsFiles, make_cert

TO = "ann.lee@example.com"
SUBJECT = "Your verification code"


def test_a_message_is_caught_with_its_parts_and_headers(smtp_catcher: MailCatcher) -> None:
    sender = EmailSender.from_config(smtp_catcher.config(), env={})
    message_id = sender.send(
        [TO, "bo@example.com"],
        SUBJECT,
        "Your code is 123456.\nStatus: https://portal.example.com/status/abc\n",
        html='<p>Your code is <b>123456</b>. <a href="https://portal.example.com/status/abc">'
        "Status</a></p>",
        headers={
            "List-Unsubscribe": "<https://portal.example.com/unsubscribe/tok>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    (mail,) = smtp_catcher.wait_for(1)
    assert mail.envelope_from == "privacy@example.com"
    assert mail.envelope_to == (TO, "bo@example.com")
    assert mail.subject == SUBJECT and mail.to == f"{TO}, bo@example.com"
    assert mail.message["Message-ID"] == message_id
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "123456" in mail.text and "<b>123456</b>" in (mail.html or "")
    assert mail.message.get_content_type() == "multipart/alternative"


def test_plain_text_only_and_unicode(smtp_catcher: MailCatcher) -> None:
    sender = EmailSender.from_config(smtp_catcher.config(), env={})
    sender.send(TO, "Reçu — votre demande", "Bonjour Zoë,\nvotre demande est reçue.\n")
    (mail,) = smtp_catcher.wait_for(1)
    assert mail.subject == "Reçu — votre demande"
    assert "Zoë" in mail.text and mail.html is None


def test_config_from_the_environment_and_the_mapping() -> None:
    env = {
        "SYMFHIR_SMTP_HOST": "smtp.example.com",
        "SYMFHIR_SMTP_SECURITY": "tls",
        "SYMFHIR_SMTP_USERNAME": "spa",
        "SYMFHIR_SMTP_PASSWORD": "pw-from-env",
        "SYMFHIR_SMTP_FROM": "privacy@example.com",
    }
    sender = EmailSender.from_config(None, env=env)
    assert (sender.host, sender.port, sender.security) == ("smtp.example.com", 465, "tls")
    assert "pw-from-env" not in repr(sender)
    # The mapping wins over the environment, key by key.
    sender = EmailSender.from_config({"security": "starttls", "port": "2525"}, env=env)
    assert (sender.port, sender.security, sender.username) == (2525, "starttls", "spa")
    assert EmailSender.from_config({"security": "starttls"}, env=env).port == 587
    plain = {k: v for k, v in env.items() if "USERNAME" not in k and "PASSWORD" not in k}
    assert EmailSender.from_config({"security": "none"}, env=plain).port == 25


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"security": "ssl"}, "security must be one of"),
        ({"host": ""}, "host is not set"),
        ({"port": "x"}, "must be numbers"),
        ({"port": 70000}, "port must be"),
        ({"from": "not an address"}, "from address"),
        ({"security": "none", "username": "spa", "password": "pw"}, "need security"),
        ({"relay": "x"}, "unknown keys"),
    ],
)
def test_bad_settings_are_config_errors(mapping, match) -> None:
    base = {"host": "smtp.example.com", "from": "privacy@example.com", "security": "starttls"}
    with pytest.raises(ConfigError, match=match):
        EmailSender.from_config({**base, **mapping}, env={})


@pytest.mark.parametrize(
    ("to", "subject", "headers", "field"),
    [
        ("not-an-address", SUBJECT, None, "to"),
        ([], SUBJECT, None, "to"),
        (TO, "Hi\r\nBcc: evil@example.com", None, "subject"),
        (TO, SUBJECT, {"Reply-To": "a@example.com\nBcc: evil@example.com"}, "reply-to"),
        (TO, SUBJECT, {"From": "boss@example.com"}, "headers"),
        (TO, SUBJECT, {"Bcc\r\nX": "y"}, "headers"),
    ],
)
def test_bad_messages_are_refused_before_connecting(to, subject, headers, field) -> None:
    # Nothing listens there: a refusal proves nothing was sent.
    sender = EmailSender("127.0.0.1", free_port(), "none", "privacy@example.com")
    with pytest.raises(RecordError) as caught:
        sender.send(to, subject, "text", headers=headers)
    assert caught.value.field == field
    assert "evil" not in str(caught.value)


def test_starttls_with_login_through_the_ca_file(tmp_path, tls_files: TlsFiles) -> None:
    logins = {"spa": "s3cret-smtp"}
    with MailCatcher(tmp_path / "m", starttls=tls_files.server_context(), logins=logins) as c:
        config = {
            **c.config(),
            "username": "spa",
            "password": "s3cret-smtp",
            "ca_file": str(tls_files.cert),
        }
        assert config["security"] == "starttls"
        EmailSender.from_config(config, env={}).send(TO, SUBJECT, "over TLS")
        (mail,) = c.wait_for(1)
        assert mail.text.strip() == "over TLS"
        wrong = EmailSender.from_config({**config, "password": "wrong"}, env={})
        with pytest.raises(DeliveryError, match="authentication refused") as caught:
            wrong.send(TO, SUBJECT, "x")
        assert caught.value.server == f"127.0.0.1:{c.port}"
        assert TO not in str(caught.value)


def test_implicit_tls(tmp_path, tls_files: TlsFiles) -> None:
    with MailCatcher(tmp_path / "m", tls=tls_files.server_context()) as c:
        config = {**c.config(), "ca_file": str(tls_files.cert)}
        assert config["security"] == "tls"
        EmailSender.from_config(config, env={}).send(TO, SUBJECT, "implicit TLS")
        assert c.wait_for(1)[0].text.strip() == "implicit TLS"


def test_an_untrusted_certificate_is_refused(tmp_path, tls_files: TlsFiles) -> None:
    other = make_cert(tmp_path, "other")
    with MailCatcher(tmp_path / "m", starttls=tls_files.server_context()) as c:
        sender = EmailSender.from_config({**c.config(), "ca_file": str(other.cert)}, env={})
        with pytest.raises(DeliveryError, match="TLS failed"):
            sender.send(TO, SUBJECT, "x")
        assert c.messages() == []


def test_starttls_asked_of_a_server_without_it(smtp_catcher: MailCatcher) -> None:
    sender = EmailSender.from_config({**smtp_catcher.config(), "security": "starttls"}, env={})
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        sender.send(TO, SUBJECT, "x")
    assert smtp_catcher.messages() == []


def test_no_server_is_a_retryable_error_naming_the_server(caplog) -> None:
    port = free_port()
    sender = EmailSender("127.0.0.1", port, "none", "privacy@example.com", timeout=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
        sender.send(TO, SUBJECT, "Your code is 123456")
    error = caught.value
    assert error.server == f"127.0.0.1:{port}" and error.retryable
    assert "connection refused" in str(error)
    for text in (TO, "ann.lee", SUBJECT, "123456"):
        assert text not in str(error) and text not in caplog.text


def test_a_silent_server_times_out(caplog) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        sender = EmailSender("127.0.0.1", port, "none", "privacy@example.com", timeout=0.3)
        with pytest.raises(DeliveryError, match="did not answer") as caught:
            sender.send(TO, SUBJECT, "x")
    assert caught.value.retryable


def test_sending_logs_no_recipient_or_content(smtp_catcher: MailCatcher, caplog) -> None:
    sender = EmailSender.from_config(smtp_catcher.config(), env={})
    with caplog.at_level(logging.DEBUG, logger="symfhir"):
        sender.send(TO, SUBJECT, "Your code is 123456")
    assert f"127.0.0.1:{smtp_catcher.port}" in caplog.text
    for text in ("ann.lee", SUBJECT, "123456"):
        assert text not in caplog.text
