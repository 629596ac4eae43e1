"""Text-message opt-out: the wording that revokes consent, the SMS provider's webhook
signature, and the TwiML-style answer (pure).

Wording (47 CFR 64.1200(a)(10)-(12), the FCC's consent-revocation rule): a message that is one
of the rule's keywords (STOP, QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE, and STOPALL),
in any case, with punctuation or politeness around it, or that uses other plain opt-out
wording ("please stop texting me", "no more messages", "remove me") not reversed by a negation
right before it ("don't stop texting me"). A keyword inside a longer message ("cancel my
appointment") is not an opt-out. The words are data: ``sms`` of ``mappings/marketing.yaml``.

Signature: the form common SMS providers use (Twilio's ``X-Twilio-Signature``): HMAC-SHA1,
under the account's auth token, of the full request URL (with its query string) followed by
every POST parameter's name and value, sorted by name, concatenated; base64. Compared in
constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from xml.sax.saxutils import escape

from symfhir.marketing.rules import SmsWording, load_marketing_rules

SIGNATURE_HEADER = "X-Twilio-Signature"
TWIML_TYPE = "text/xml"
_NOT_WORD = re.compile(r"[^\w\s]+")
#: Longer messages are not read for opt-out wording: STOP is short, and a regex over an
#: attacker's megabyte is not.
MAX_BODY = 1600


def normalized(text: str) -> str:
    """The message casefolded, apostrophes dropped ("don't" -> "dont"), other punctuation
    turned into spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text[:MAX_BODY]).casefold()
    text = text.replace("'", "").replace("\u2019", "")
    return " ".join(_NOT_WORD.sub(" ", text).replace("_", " ").split())


def is_opt_out(text: str, wording: SmsWording | None = None) -> bool:
    """True when the message revokes consent to marketing texts (see the module docstring)."""
    wording = wording or load_marketing_rules().sms
    words = normalized(text)
    if not words:
        return False
    if _keyword_alone(words, wording):
        return True
    for pattern in wording.phrases:
        for found in re.finditer(rf"(?:^| )(?:{pattern.pattern})(?= |$)", words):
            before = words[: found.start()].strip()
            if not any(before == neg or before.endswith(f" {neg}") for neg in wording.negations):
                return True
    return False


def _keyword_alone(words: str, wording: SmsWording) -> bool:
    """The message is a keyword with at most politeness words around it."""
    for keyword in wording.keywords:
        if keyword not in words:
            continue
        for found in re.finditer(rf"(?:^| )({re.escape(keyword)})(?= |$)", words):
            rest = f"{words[: found.start(1)]} {words[found.end(1) :]}"
            if _only_politeness(rest, wording.politeness):
                return True
    return False


def _only_politeness(rest: str, politeness: frozenset[str]) -> bool:
    rest = f" {' '.join(rest.split())} "
    # Longest first, so "thank you" goes before a "you" could be left over.
    for phrase in sorted(politeness, key=len, reverse=True):
        while f" {phrase} " in rest:
            rest = rest.replace(f" {phrase} ", " ")
    return not rest.strip()


def expected_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The provider's signature of a POST to ``url`` with form ``params`` (name, value pairs;
    a repeated name keeps each value), as the module docstring describes."""
    data = url + "".join(f"{name}{value}" for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_valid(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], given: str | None
) -> bool:
    """True when ``given`` (the signature header) is the provider's signature of this
    request; False for a missing header or an empty auth token (never accept unsigned)."""
    if not auth_token or not given:
        return False
    expected = expected_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def twiml_reply(text: str | None) -> str:
    """The webhook's answer: one message back, or none (an empty Response)."""
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    if not text:
        return f"{head}<Response></Response>"
    return f"{head}<Response><Message>{escape(text)}</Message></Response>"
