"""Settings: defaults, file, environment, mapping."""

from __future__ import annotations

import pytest

from smart_app.config import DEFAULT_SCOPES, load_settings
from symfhir.errors import ConfigError

pytestmark = pytest.mark.unit


def test_defaults():
    settings = load_settings({}, environ={})
    assert settings["SYMFHIR_CLIENT_ID"] == "symfhir"
    assert settings["SYMFHIR_REDIRECT_URI"] == "http://localhost:5000/callback"
    assert settings["SYMFHIR_TRUSTED_ISS"] == ["http://localhost:5100/fhir"]
    assert settings["SYMFHIR_EHR_ORIGINS"] == ["http://localhost:5100"]
    assert settings["SYMFHIR_SCOPES"] == DEFAULT_SCOPES
    assert settings["SYMFHIR_COOKIE_SECURE"] is False


def test_precedence_file_env_mapping(tmp_path):
    path = tmp_path / "app.toml"
    path.write_text(
        'SYMFHIR_CLIENT_ID = "from-file"\n'
        'SYMFHIR_TRUSTED_ISS = ["https://a.example/fhir", "https://b.example/fhir/"]\n'
        'SYMFHIR_BASE_URL = "https://file.example"\n'
    )
    env = {"SYMFHIR_APP_CONFIG": str(path), "SYMFHIR_BASE_URL": "https://env.example/"}
    settings = load_settings({"SYMFHIR_CLIENT_ID": "from-mapping"}, environ=env)
    assert settings["SYMFHIR_CLIENT_ID"] == "from-mapping"
    assert settings["SYMFHIR_BASE_URL"] == "https://env.example"
    assert settings["SYMFHIR_TRUSTED_ISS"] == ["https://a.example/fhir", "https://b.example/fhir"]
    assert settings["SYMFHIR_COOKIE_SECURE"] is True


def test_env_lists_and_booleans():
    env = {
        "SYMFHIR_EHR_ORIGINS": "https://a.example, https://b.example",
        "SYMFHIR_COOKIE_SECURE": "1",
    }
    settings = load_settings({}, environ=env)
    assert settings["SYMFHIR_EHR_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert settings["SYMFHIR_COOKIE_SECURE"] is True


@pytest.mark.parametrize(
    "override",
    [
        {"SYMFHIR_BASE_URL": "ftp://x"},
        {"SYMFHIR_TRUSTED_ISS": [1]},
        {"SYMFHIR_COOKIE_SECURE": "maybe"},
    ],
)
def test_bad_values(override):
    with pytest.raises(ConfigError):
        load_settings(override, environ={})


def test_unknown_file_key(tmp_path):
    path = tmp_path / "app.toml"
    path.write_text("NOPE = 1\n")
    with pytest.raises(ConfigError):
        load_settings({"SYMFHIR_APP_CONFIG": str(path)}, environ={})


def test_private_key_file_is_used(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from smart_app import create_app

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "key.pem").write_bytes(pem)
    app = create_app(
        {
            "SYMFHIR_PRIVATE_KEY_FILE": str(tmp_path / "key.pem"),
            "SYMFHIR_KEY_ID": "k1",
            "SYMFHIR_SESSION_DIR": str(tmp_path / "s"),
        }
    )
    (jwk,) = app.test_client().get("/.well-known/jwks.json").json["keys"]
    assert jwk["alg"] == "RS384" and jwk["kid"] == "k1" and "d" not in jwk
