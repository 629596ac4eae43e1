"""A push target's URLs: https, or plain http to this machine only, so that neither the bearer
token nor the client's records ever cross a network in clear."""

from __future__ import annotations

import pytest

from symfhir.errors import SharingError
from symfhir.sharing.push_target import PushTarget
from symfhir.urls import secure_url

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "url",
    [
        "https://fhir.physician.example/r4",
        "http://localhost:8080/fhir",
        "http://127.0.0.1:9/fhir",
        "http://[::1]:8080/fhir",
    ],
)
def test_https_or_this_machine_is_accepted(url: str) -> None:
    assert secure_url(url)
    assert PushTarget(url, bearer_token="t").base_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://fhir.physician.example/r4",
        "http://10.0.0.5/fhir",
        "http://localhost.evil.example/fhir",
        "ftp://fhir.physician.example/r4",
        "https:///fhir",
        "",
    ],
)
def test_plain_http_elsewhere_is_refused_naming_the_field(url: str) -> None:
    assert not secure_url(url)
    with pytest.raises(SharingError, match=r"^base_url: "):
        PushTarget(url, bearer_token="t")


def test_a_token_url_in_clear_is_refused() -> None:
    with pytest.raises(SharingError, match=r"^token_url: "):
        PushTarget(
            "https://fhir.physician.example/r4",
            client_id="spa",
            private_key_path="key.pem",  # type: ignore[arg-type]
            token_url="http://auth.physician.example/token",
        )
