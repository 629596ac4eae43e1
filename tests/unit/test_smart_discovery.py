"""SMART discovery against a fake EHR on loopback (pytest-httpserver)."""

import json

import pytest
from werkzeug import Response

from symfhir.errors import DiscoveryError
from symfhir.smart.discovery import SmartConfiguration, discover
from tests.app.fake_ehr import FakeEhr

pytestmark = pytest.mark.unit


@pytest.fixture
def fake(httpserver) -> FakeEhr:
    return FakeEhr(httpserver)


def test_discovery_reads_the_endpoints(fake):
    config = discover(fake.iss, 5)
    assert config.token_endpoint == fake.token_url
    assert config.issuer == fake.issuer
    assert config.jwks_uri and config.jwks_uri.endswith("/auth/jwks")
    assert SmartConfiguration.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"code_challenge_methods_supported": ["plain"]}, "S256"),
        ({"code_challenge_methods_supported": None}, "S256"),
        ({"token_endpoint": "not a url"}, "token_endpoint"),
        ({"authorization_endpoint": "javascript:alert(1)"}, "authorization_endpoint"),
    ],
)
def test_unusable_configuration(fake, override, words):
    fake.discovery_overrides = override
    with pytest.raises(DiscoveryError, match=words) as caught:
        discover(fake.iss, 5)
    assert caught.value.error == "invalid_configuration"


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (Response("nope", status=404), "HTTP 404"),
        (Response("<html>", status=200), "not JSON"),
        (Response("[1, 2]", status=200, content_type="application/json"), "JSON object"),
    ],
)
def test_bad_answers(httpserver, response, words):
    httpserver.expect_request("/fhir/.well-known/smart-configuration").respond_with_response(
        response
    )
    with pytest.raises(DiscoveryError, match=words):
        discover(httpserver.url_for("/fhir").rstrip("/"), 5)


def test_unreachable():
    with pytest.raises(DiscoveryError, match="could not be reached"):
        discover("http://127.0.0.1:9/fhir", 2)


def test_issuer_and_keys_from_openid_configuration(fake, httpserver):
    fake.discovery_overrides = {"issuer": None, "jwks_uri": None}
    document = {"issuer": fake.issuer, "jwks_uri": httpserver.url_for("/auth/jwks")}
    httpserver.expect_request("/fhir/.well-known/openid-configuration").respond_with_handler(
        lambda _: Response(json.dumps(document), content_type="application/json")
    )
    config = discover(fake.iss, 5)
    assert (config.issuer, config.jwks_uri) == (document["issuer"], document["jwks_uri"])


def test_no_openid_configuration_leaves_them_unset(fake):
    fake.discovery_overrides = {"issuer": None, "jwks_uri": None}
    config = discover(fake.iss, 5)
    assert config.issuer is None and config.jwks_uri is None
