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
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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


# ── the JWE's parts, and their compact form as served ─────────────────────────


def joserfc_decrypt(token: str, key: bytes) -> tuple[dict, bytes]:
    """The cross-check: a general JOSE library opens what we serialize."""
    from joserfc import jwe
    from joserfc.jwk import OctKey

    registry = jwe.JWERegistry(algorithms=["dir", "A256GCM", "DEF"])
    registry.max_ciphertext_length = len(token)  # its default stops at 64 KB
    found = jwe.decrypt_compact(token, OctKey.import_key(key), registry=registry)
    return dict(found.protected), found.plaintext


# Sizes around the streamed chunk (a multiple of 3) and around base64's groups of 3.
SIZES = [0, 1, 2, 3, 4, 47, shl.STREAM_CHUNK - 1, shl.STREAM_CHUNK, shl.STREAM_CHUNK + 2]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("compress", [False, True])
def test_our_compact_form_opens_with_joserfc_and_the_independent_decoder(
    size: int, compress: bool
) -> None:
    key = shl.new_key()
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    parts = shl.encrypt_parts(data, key, "application/fhir+json", compress=compress)
    token = parts.compact()
    header, plain = shl_decoder.decrypt(token, key)
    assert plain == data and header == parts.header
    assert joserfc_decrypt(token, key) == (header, data)
    assert len(token) == parts.compact_length
    assert str(parts) == token


@pytest.mark.parametrize("chunk", [3, 48, shl.STREAM_CHUNK])
def test_streamed_chunks_join_into_the_compact_form(chunk: int) -> None:
    key = shl.new_key()
    parts = shl.encrypt_parts(b"\xfb\xff" * 50_001, key, "application/fhir+json")
    chunks = list(parts.compact_chunks(chunk))
    assert b"".join(chunks).decode() == parts.compact()
    ciphertext_chunks = chunks[1:-1]
    assert len(ciphertext_chunks) == -(-len(parts.ciphertext) // chunk)
    assert all(b"=" not in c and b"+" not in c and b"/" not in c for c in chunks)
    assert all(len(c) == chunk // 3 * 4 for c in ciphertext_chunks[:-1])  # no padding inside
    with pytest.raises(SharingError, match=r"^chunk: "):
        next(parts.compact_chunks(4))


def test_the_parts_are_binary_and_the_header_is_the_aad() -> None:
    key = shl.new_key()
    data = b"x" * 3000
    parts = shl.encrypt_parts(data, key, "application/fhir+json")
    assert len(parts.iv) == 12 and len(parts.tag) == 16
    assert len(parts.ciphertext) == len(data)  # AES-GCM: as long as the plaintext, no base64
    assert parts.compact_length > len(parts.ciphertext) * 4 / 3
    # RFC 7516 §5.1: the AAD is the ASCII of the base64url header, as raw AES-GCM checks.
    raw = AESGCM(key).decrypt(
        parts.iv, bytes(parts.ciphertext) + parts.tag, parts.protected.encode("ascii")
    )
    assert raw == data
    assert json.loads(shl.b64url_decode(parts.protected)) == {
        "alg": "dir",
        "enc": "A256GCM",
        "cty": "application/fhir+json",
    }
    assert "ciphertext" not in repr(parts)  # never megabytes in a log line


def test_each_encryption_of_parts_draws_a_fresh_iv() -> None:
    key = shl.new_key()
    ivs = {shl.encrypt_parts(b"same", key, "application/fhir+json").iv for _ in range(100)}
    assert len(ivs) == 100


def header_of(fields: dict) -> str:
    return shl.b64url(json.dumps(fields, separators=(",", ":")).encode())


@pytest.mark.parametrize(
    "protected",
    [
        header_of({"alg": "dir", "enc": "A128GCM", "cty": "application/fhir+json"}),
        header_of({"alg": "A256KW", "enc": "A256GCM", "cty": "application/fhir+json"}),
        header_of({"alg": "dir", "enc": "A256GCM", "cty": "application/fhir+json", "zip": "GZ"}),
        header_of({"alg": "dir", "enc": "A256GCM", "cty": "application/fhir+json", "kid": "k"}),
        header_of({"alg": "dir", "enc": "A256GCM"}),
        header_of({"enc": "A256GCM", "alg": "dir", "cty": "application/fhir+json"}),  # not ours
        "not base64!",
        header_of(["dir"]),
    ],
)
def test_parts_with_a_header_we_do_not_make_are_refused(protected: str) -> None:
    with pytest.raises(SharingError, match=r"^protected: "):
        shl.EncryptedFile(protected, b"\0" * 12, b"", b"\0" * 16)


def test_parts_with_a_wrong_iv_or_tag_size_are_refused() -> None:
    protected = shl.protected_header("application/fhir+json")
    with pytest.raises(SharingError, match=r"^iv: 12 bytes"):
        shl.EncryptedFile(protected, b"\0" * 16, b"", b"\0" * 16)
    with pytest.raises(SharingError, match=r"^tag: 16 bytes"):
        shl.EncryptedFile(protected, b"\0" * 12, b"", b"\0" * 8)


@pytest.mark.parametrize("content_type", ["", "json", "application/fhir+json\n", "tëxt/plain"])
def test_a_bad_content_type_is_refused(content_type: str) -> None:
    with pytest.raises(SharingError, match=r"^content_type: "):
        shl.encrypt_parts(b"x", shl.new_key(), content_type)


def test_zip_is_in_the_header_only_when_compressed() -> None:
    key = shl.new_key()
    plain = shl.encrypt_parts(b"{}" * 100, key, "application/fhir+json")
    packed = shl.encrypt_parts(b"{}" * 100, key, "application/fhir+json", compress=True)
    assert "zip" not in plain.header and packed.header["zip"] == "DEF"
    assert len(packed.ciphertext) < len(plain.ciphertext)
