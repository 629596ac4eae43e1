"""The sandbox EHR says in its id_token whether the practitioner signed in with a second
factor (the launcher's ``mfa`` option), and symfhir.smart judges it as the app does."""

import pytest
from joserfc.jwk import KeySet

from symfhir.errors import MfaRequiredError
from symfhir.smart.id_token import MfaPolicy, check_claims, check_mfa
from tests.sandbox.conftest import FHIR, launch_code

pytestmark = pytest.mark.unit


def form(code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": "http://localhost:5000/callback",
    }


def id_token_claims(client, get_code, token_request, **launch: object) -> dict:
    code, verifier = get_code(launch=launch_code(client, client_id="symfhir", **launch))
    response = token_request(**form(code, verifier))
    assert response.status_code == 200, response.json
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json)
    return check_claims(response.json["id_token"], keys, FHIR, "symfhir", "n-1")


@pytest.mark.parametrize("mfa", [True, "true", "on"])
def test_a_launch_with_mfa_gives_amr_mfa(client, get_code, token_request, mfa):
    claims = id_token_claims(client, get_code, token_request, mfa=mfa)
    assert claims["amr"] == ["pwd", "mfa"]
    check_mfa(claims, MfaPolicy(required=True))


@pytest.mark.parametrize("launch", [{}, {"mfa": False}, {"mfa": "no"}])
def test_a_launch_without_mfa_is_password_only(client, get_code, token_request, launch):
    claims = id_token_claims(client, get_code, token_request, **launch)
    assert claims["amr"] == ["pwd"]
    check_mfa(claims, MfaPolicy())
    with pytest.raises(MfaRequiredError):
        check_mfa(claims, MfaPolicy(required=True))
