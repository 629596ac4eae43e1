"""SMART Health Links, the protocol: ids and keys, payload rules (flags, label, url), the
shlink:/ form, the viewer URL, QR codes, and compact JWE checked with the independent
decoder (tests/shl_decoder.py)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from datetime import datetime, timedelta

import pytest

from symfhir.errors import SharingError
from symfhir.sharing import shl
from tests import shl_decoder

pytestmark = pytest.mark.unit

URL = "https://links.example.org/shl/m/" + "A" * 43


def test_manifest_ids_carry_256_random_bits() -> None:
    ids = {shl.new_manifest_id() for _ in range(200)}
    assert len(ids) == 200
    for mid in ids:
        assert len(mid) == 43 and len(shl.b64url_decode(mid)) == 32
        assert set(mid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_keys_are_fresh_32_bytes() -> None:
    keys = {shl.new_key() for _ in range(50)}
    assert len(keys) == 50 and all(len(k) == 32 for k in keys)


def test_payload_has_the_spec_fields_in_their_forms(now: datetime) -> None:
    key = shl.new_key()
    exp = now + timedelta(days=3)
    payload = shl.link_payload(URL, key, exp=exp, flags="LP", label="For Dr. Rivera")
    assert payload == {
        "url": URL,
        "key": base64.urlsafe_b64encode(key).rstrip(b"=").decode(),
        "exp": int(exp.timestamp()),
        "flag": "LP",
        "label": "For Dr. Rivera",
        "v": 1,
    }
    assert len(payload["key"]) == 43


def test_payload_leaves_out_what_is_not_set() -> None:
    payload = shl.link_payload(URL, shl.new_key(), exp=None, flags="", label=None)
    assert set(payload) == {"url", "key", "v"}


@pytest.mark.parametrize(
    ("long_term", "passcode", "single_file", "expected"),
    [
        (False, False, False, ""),
        (True, False, False, "L"),
        (False, True, False, "P"),
        (False, False, True, "U"),
        (True, True, False, "LP"),
        (True, False, True, "LU"),
    ],
)
def test_flags_come_in_the_spec_order(
    long_term: bool, passcode: bool, single_file: bool, expected: str
) -> None:
    assert shl.flags(long_term=long_term, passcode=passcode, single_file=single_file) == expected


def test_single_file_never_with_a_passcode() -> None:
    with pytest.raises(SharingError, match=r"^flag: .*U.*P"):
        shl.flags(passcode=True, single_file=True)


@pytest.mark.parametrize("flag", ["PL", "UL", "PU", "LPU", "LL", "X", "p", "UP"])
def test_bad_flags_are_refused_naming_the_field(flag: str) -> None:
    with pytest.raises(SharingError, match=r"^flag: "):
        shl.link_payload(URL, shl.new_key(), exp=None, flags=flag, label=None)


def test_label_up_to_80_characters() -> None:
    shl.link_payload(URL, shl.new_key(), exp=None, flags="", label="x" * 80)
    with pytest.raises(SharingError, match=r"^label: at most 80 characters \(81 given\)"):
        shl.link_payload(URL, shl.new_key(), exp=None, flags="", label="x" * 81)
    with pytest.raises(SharingError, match=r"^label: control"):
        shl.link_payload(URL, shl.new_key(), exp=None, flags="", label="a\nb")


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("https://x.example/" + "a" * 111, "url: at most 128"),
        ("ftp://x.example/m", "url: an http"),
    ],
)
def test_bad_urls_are_refused(url: str, field: str) -> None:
    with pytest.raises(SharingError, match=rf"^{field}"):
        shl.link_payload(url, shl.new_key(), exp=None, flags="", label=None)


def test_a_short_key_or_a_naive_expiry_is_refused() -> None:
    with pytest.raises(SharingError, match=r"^key: "):
        shl.link_payload(URL, b"k" * 16, exp=None, flags="", label=None)
    with pytest.raises(SharingError, match=r"^exp: "):
        shl.link_payload(URL, shl.new_key(), exp=datetime(2030, 1, 1), flags="", label=None)


def test_shlink_is_base64url_of_minified_json_and_the_decoder_reads_it(now: datetime) -> None:
    payload = shl.link_payload(URL, shl.new_key(), exp=now, flags="P", label="Dr. Ñandú")
    link = shl.shlink(payload)
    assert link.startswith("shlink:/") and "=" not in link
    raw = base64.urlsafe_b64decode(link[8:] + "=" * (-len(link[8:]) % 4)).decode()
    assert " " not in raw.replace("Dr. Ñandú", "")  # minified
    assert json.loads(raw) == payload
    assert shl_decoder.parse(link) == payload
    assert shl.parse_shlink(link) == payload


def test_the_viewer_url_keeps_the_link_in_the_fragment() -> None:
    link = shl.shlink(shl.link_payload(URL, shl.new_key(), exp=None, flags="", label=None))
    url = shl.viewer_url("https://links.example.org/view", link)
    assert url == f"https://links.example.org/view#{link}"
    assert shl_decoder.parse(url) == shl.parse_shlink(url)
    with pytest.raises(SharingError, match=r"^viewer: "):
        shl.viewer_url("https://x.example/view#a", link)


def test_parse_refuses_what_is_not_a_link() -> None:
    for bad in ("https://x.example/", "shlink:/!!!", "shlink:/" + shl.b64url(b"[1]")):
        with pytest.raises(SharingError, match=r"^link: "):
            shl.parse_shlink(bad)


def test_qr_png_is_a_png_of_a_qr_code() -> None:
    text = "https://links.example.org/view#shlink:/" + "A" * 300
    png = shl.qr_png(text)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width == height  # square
    # Version 10+ for ~340 characters at level M: at least 57 modules + 2 x 4 border, x 4.
    assert width >= (57 + 8) * 4
    assert shl.qr_png("short") != shl.qr_png("other")


def test_qr_svg_is_an_svg_document_of_the_same_code() -> None:
    svg = shl.qr_svg("https://links.example.org/view#shlink:/abc")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg and "<path" in svg
    assert "<?xml" not in svg  # ready to inline in a page


def test_jwe_round_trip_with_the_independent_decoder() -> None:
    key = shl.new_key()
    data = json.dumps({"resourceType": "Bundle", "type": "document"}).encode()
    token = shl.encrypt(data, key, "application/fhir+json").decode()
    header, plain = shl_decoder.decrypt(token, key)
    assert header == {"alg": "dir", "enc": "A256GCM", "cty": "application/fhir+json"}
    assert plain == data
    assert token.split(".")[1] == ""  # alg=dir: no encrypted key


def test_compressed_jwe_is_raw_deflate() -> None:
    key = shl.new_key()
    data = json.dumps({"entry": [{"resource": {"resourceType": "Observation"}}] * 200}).encode()
    token = shl.encrypt(data, key, "application/fhir+json", compress=True).decode()
    header, plain = shl_decoder.decrypt(token, key)
    assert header["zip"] == "DEF" and plain == data
    assert len(token) < len(data) / 4  # it did compress
    ciphertext_len = len(shl.b64url_decode(token.split(".")[3]))
    assert ciphertext_len == len(zlib.compress(data)[2:-4])  # raw DEFLATE: no zlib wrapper


def test_each_encryption_draws_a_fresh_iv() -> None:
    key = shl.new_key()
    tokens = [shl.encrypt(b"same", key, "application/fhir+json").decode() for _ in range(50)]
    ivs = {t.split(".")[2] for t in tokens}
    assert len(ivs) == 50
    assert len({t.split(".")[3] for t in tokens}) == 50


def test_a_wrong_key_or_a_tampered_token_does_not_decrypt() -> None:
    from cryptography.exceptions import InvalidTag

    key = shl.new_key()
    token = shl.encrypt(b"secret", key, "application/fhir+json").decode()
    with pytest.raises(InvalidTag):
        shl_decoder.decrypt(token, shl.new_key())
    _header, *rest = token.split(".")
    other = shl.b64url(b'{"alg":"dir","enc":"A256GCM","cty":"text/plain"}')
    with pytest.raises(InvalidTag):  # the header is authenticated
        shl_decoder.decrypt(".".join([other, *rest]), key)


def test_encrypt_refuses_a_bad_key() -> None:
    with pytest.raises(SharingError, match=r"^key: "):
        shl.encrypt(b"x", b"short", "application/fhir+json")
