"""SMS opt-out wording (the FCC's keywords and plain wording, both ways), the provider's
webhook signature (the documented worked example, tampering) and the TwiML answer."""

from __future__ import annotations

import pytest

from symfhir.marketing.sms_optout import (
    expected_signature,
    is_opt_out,
    normalized,
    signature_valid,
    twiml_reply,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop.",
        "  STOP!!  ",
        "\tstop\n",
        "STOPALL",
        "stop all",
        "QUIT",
        "end",
        "End.",
        "REVOKE",
        "OPT OUT",
        "opt-out",
        "Opt out!",
        "OPTOUT",
        "CANCEL",
        "cancel",
        "UNSUBSCRIBE",
        "Unsubscribe.",
        "Stop please",
        "please stop",
        "STOP, thank you",
        "ＳＴＯＰ",  # full-width letters, as some phones send them
        "please stop texting me",
        "Stop texting me!",
        "stop sending me these",
        "No more messages",
        "no more texts please",
        "Remove me",
        "remove me from your list",
        "Please take me off this list",
        "Don't text me again",
        "do not contact me",
        "unsubscribe me",
        "opt me out",
        "I don't want any more texts",
        "leave me alone",
    ],
)
def test_opt_out_wording_is_recognised(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Yes",
        "Y",
        "Thanks!",
        "ok thanks",
        "don't stop the appointment reminders",
        "Please don't stop texting me",
        "never stop sending me deals!",
        "cancel my appointment",
        "Can I cancel my 3pm tomorrow?",
        "What time does it end?",
        "I will stop by tomorrow",
        "See you at the end of the week",
        "Can you remove the charge from my card?",
        "stopping by at 4",
        "endless thanks",
        "Is the unsubscribed rate lower?",
        "C",
    ],
)
def test_ordinary_replies_are_not_opt_outs(text: str) -> None:
    assert not is_opt_out(text)


def test_a_huge_message_is_read_only_at_its_start() -> None:
    assert not is_opt_out("hello " * 100_000 + "stop")
    assert normalized("Don’t  STOP!") == "dont stop"


# Twilio's worked example ("Validating requests"): auth token 12345, this URL and form.
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_signature_matches_the_documented_example() -> None:
    assert expected_signature("12345", DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    # The order parameters arrive in does not matter: they are sorted by name.
    assert signature_valid("12345", DOC_URL, list(reversed(DOC_PARAMS)), DOC_SIGNATURE)


@pytest.mark.parametrize(
    ("token", "url", "params", "signature"),
    [
        ("12345", DOC_URL, [*DOC_PARAMS[:3], ("From", "+12349013031"), DOC_PARAMS[4]], None),
        ("12345", DOC_URL, [*DOC_PARAMS, ("Body", "STOP")], None),
        ("12345", DOC_URL.replace("foo=1", "foo=2"), DOC_PARAMS, None),
        ("12345", DOC_URL.replace("https", "http"), DOC_PARAMS, None),
        ("12346", DOC_URL, DOC_PARAMS, None),
        ("12345", DOC_URL, DOC_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"),
        ("12345", DOC_URL, DOC_PARAMS, "1/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        ("12345", DOC_URL, DOC_PARAMS, ""),
        ("", DOC_URL, DOC_PARAMS, DOC_SIGNATURE),
    ],
    ids=[
        "param-changed",
        "param-added",
        "query-changed",
        "scheme-changed",
        "other-token",
        "cut-short",
        "flipped",
        "missing",
        "no-token-configured",
    ],
)
def test_tampered_or_unsigned_requests_are_refused(
    token: str, url: str, params: list[tuple[str, str]], signature: str | None
) -> None:
    assert not signature_valid(
        token, url, params, DOC_SIGNATURE if signature is None else signature
    )


def test_twiml_reply_escapes_and_may_be_empty() -> None:
    assert twiml_reply(None).endswith("<Response></Response>")
    reply = twiml_reply("A & B <no more>")
    assert "<Message>A &amp; B &lt;no more&gt;</Message>" in reply
