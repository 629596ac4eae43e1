"""Text messages: the provider form (form-encoded To/From/Body, basic auth) against
pytest-httpserver, its 429/503/401/400/timeouts, the outbox, and the configuration."""

from __future__ import annotations

import base64
import json
import logging
import threading
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from symfhir.errors import ConfigError, DeliveryError, RecordError
from symfhir.notify.sms import HttpSmsSender, OutboxSmsSender, SmsSender, read_outbox

pytestmark = pytest.mark.faults

TO = "(337) 555-0101"
E164 = "+13375550101"
BODY = "Your symfhir code is 123456"
PATH = "/2010-04-01/Accounts/AC123/Messages.json"


def ok(request: Request) -> Response:
    return Response(
        json.dumps({"sid": "SM42", "status": "queued"}), 201, mimetype="application/json"
    )


def make_sender(httpserver: HTTPServer, **kwargs) -> HttpSmsSender:
    waits: list[float] = []
    sender = HttpSmsSender(
        httpserver.url_for(PATH),
        "AC123",
        "tok-secret",
        "+1 337 555 0199",
        timeout=kwargs.pop("timeout", 2.0),
        sleep=waits.append,
        **kwargs,
    )
    sender.waits = waits  # type: ignore[attr-defined]
    return sender


def test_the_provider_form(httpserver: HTTPServer, script) -> None:
    seen = script(ok)
    httpserver.expect_request(PATH, method="POST").respond_with_handler(seen)
    assert make_sender(httpserver).send(TO, BODY) == "SM42"
    (request,) = seen.requests
    assert request.content_type == "application/x-www-form-urlencoded"
    form = parse_qs(seen.bodies[0].decode())
    assert form == {"To": [E164], "From": ["+13375550199"], "Body": [BODY]}
    expected = "Basic " + base64.b64encode(b"AC123:tok-secret").decode()
    assert request.headers["Authorization"] == expected


def test_429_with_a_short_retry_after_is_retried(httpserver: HTTPServer, script) -> None:
    seen = script(Response("slow down", 429, headers={"Retry-After": "1"}), ok)
    httpserver.expect_request(PATH).respond_with_handler(seen)
    sender = make_sender(httpserver)
    assert sender.send(TO, BODY) == "SM42"
    assert seen.count == 2 and sender.waits == [1.0]


def test_503_without_retry_after_backs_off_then_gives_up(httpserver: HTTPServer, script) -> None:
    seen = script(Response("down", 503))
    httpserver.expect_request(PATH).respond_with_handler(seen)
    sender = make_sender(httpserver, retries=2)
    with pytest.raises(DeliveryError) as caught:
        sender.send(TO, BODY)
    assert seen.count == 3 and sender.waits == [0.5, 1.0]
    error = caught.value
    assert error.retryable and error.retry_after is None
    assert "provider unavailable (HTTP 503)" in str(error) and error.channel == "sms"


def test_a_long_retry_after_is_returned_not_waited(httpserver: HTTPServer, script) -> None:
    seen = script(Response("quota", 429, headers={"Retry-After": "120"}))
    httpserver.expect_request(PATH).respond_with_handler(seen)
    sender = make_sender(httpserver)
    with pytest.raises(DeliveryError, match="rate limited") as caught:
        sender.send(TO, BODY)
    assert seen.count == 1 and sender.waits == []
    assert caught.value.retry_after == 120 and caught.value.retryable


def test_a_server_error_is_not_retried(httpserver: HTTPServer, script) -> None:
    # The provider may have sent it before failing: a retry could send it twice.
    seen = script(Response("oops", 500))
    httpserver.expect_request(PATH).respond_with_handler(seen)
    with pytest.raises(DeliveryError, match=r"refused \(HTTP 500\)") as caught:
        make_sender(httpserver).send(TO, BODY)
    assert seen.count == 1 and caught.value.retryable


def test_bad_credentials(httpserver: HTTPServer, script) -> None:
    httpserver.expect_request(PATH).respond_with_handler(script(Response("no", 401)))
    with pytest.raises(DeliveryError, match="credentials refused") as caught:
        make_sender(httpserver).send(TO, BODY)
    assert not caught.value.retryable


def test_a_refusal_keeps_the_code_and_drops_the_words(httpserver, script, caplog) -> None:
    words = {"code": 21211, "message": f"The 'To' number {E164} is not a valid phone number."}
    httpserver.expect_request(PATH).respond_with_handler(
        script(Response(json.dumps(words), 400, mimetype="application/json"))
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
        make_sender(httpserver).send(TO, BODY)
    text = str(caught.value)
    assert "code 21211" in text and caught.value.server == f"127.0.0.1:{httpserver.port}"
    for secret in (E164, "555-0101", "123456", "tok-secret"):
        assert secret not in text and secret not in caplog.text


def test_no_answer_in_time(httpserver: HTTPServer, script) -> None:
    seen = script()
    seen.answers = [seen.slow(2.0, Response("late", 201))]
    httpserver.expect_request(PATH).respond_with_handler(seen)
    with pytest.raises(DeliveryError, match="no answer in time") as caught:
        make_sender(httpserver, timeout=0.3).send(TO, BODY)
    assert seen.count == 1 and caught.value.retryable


def test_nothing_listening() -> None:
    sender = HttpSmsSender("http://127.0.0.1:9/Messages.json", "AC1", "t", "+13375550199")
    with pytest.raises(DeliveryError, match="connection failed"):
        sender.send(TO, BODY)


@pytest.mark.parametrize(
    ("to", "body", "field"),
    [
        ("555", BODY, "phone"),
        ("call me", BODY, "phone"),
        (TO, "  ", "body"),
        (TO, "x" * 1601, "body"),
    ],
)
def test_bad_messages_are_refused_before_sending(httpserver, script, to, body, field) -> None:
    seen = script(ok)
    httpserver.expect_request(PATH).respond_with_handler(seen)
    with pytest.raises(RecordError) as caught:
        make_sender(httpserver).send(to, body)
    assert caught.value.field == field and seen.count == 0


def test_outbox_appends_json_lines(tmp_path) -> None:
    path = tmp_path / "out" / "sms.jsonl"
    outbox = OutboxSmsSender(path)
    first = outbox.send(TO, "one")
    threads = [threading.Thread(target=outbox.send, args=(TO, f"n{i}")) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    messages = read_outbox(path)
    assert len(messages) == 11 and messages[-1]["id"] == first
    assert messages[-1]["to"] == E164 and messages[-1]["body"] == "one"
    assert path.stat().st_mode & 0o777 == 0o600
    with path.open("a") as f:
        f.write('{"half": ')
    assert len(read_outbox(path)) == 11
    assert read_outbox(tmp_path / "none.jsonl") == []


def test_from_config(tmp_path, httpserver: HTTPServer) -> None:
    env = {
        "SYMFHIR_SMS_SENDER": "http",
        "SYMFHIR_SMS_URL": "https://api.sms.example.com/Messages.json",
        "SYMFHIR_SMS_ACCOUNT": "AC1",
        "SYMFHIR_SMS_TOKEN": "secret-token",
        "SYMFHIR_SMS_FROM": "+13375550199",
    }
    sender = SmsSender.from_config(None, env=env)
    assert isinstance(sender, HttpSmsSender) and sender.server == "api.sms.example.com"
    assert "secret-token" not in repr(sender)
    outbox = SmsSender.from_config(
        {"sender": "outbox", "outbox": str(tmp_path / "o.jsonl")}, env=env
    )
    assert isinstance(outbox, OutboxSmsSender) and outbox.path == tmp_path / "o.jsonl"


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"sender": "pigeon"}, "http or outbox"),
        ({"sender": "outbox"}, "SYMFHIR_SMS_OUTBOX"),
        ({"url": "http://api.sms.example.com/m"}, "must be https"),
        ({"url": "ftp://x"}, "not an http"),
        ({"token": ""}, "account and a token"),
        ({"from": "nope"}, "from number"),
        ({"retries": "many"}, "numbers"),
        ({"colour": "x"}, "unknown keys"),
    ],
)
def test_bad_config(mapping, match) -> None:
    base = {
        "sender": "http",
        "url": "https://api.sms.example.com/m",
        "account": "AC1",
        "token": "t",
        "from": "+13375550199",
    }
    with pytest.raises(ConfigError, match=match):
        SmsSender.from_config({**base, **mapping}, env={})
