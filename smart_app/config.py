"""The app's settings: defaults, then an optional TOML file, then SYMFHIR_* env vars, then the
mapping given to ``create_app`` (each later source wins).

The file is named by ``SYMFHIR_APP_CONFIG``; its top-level keys are the same SYMFHIR_* names
(lists as TOML arrays). In the environment a list is comma- or space-separated.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from symfhir.errors import ConfigError

# What the app reads and writes, no more. Patient, Observation and Procedure .u: an accepted
# correction (the Privacy tab) is a versioned update of the record (mappings/corrections.yaml).
# DocumentReference .crs: a client's statement of disagreement with a denied correction is
# one, filed at the desk and read for the summary's "disputed" marker; where the server's
# CapabilityStatement shows Consent or Media stored as DocumentReference, the fallback adds
# the same interactions as theirs (symfhir.smart.launch.launch_scope).
# Physician sharing (the Sharing tab): user/Practitioner.crs and user/PractitionerRole.crs —
# the physician a physician-sharing consent names is a Practitioner outside the client's
# record (read for the link's recipient: name, NPI, practice), and one entered at capture when
# none is on file is created (conditionally, on its NPI) with a PractitionerRole naming the
# practice. Everything else a share reads is
# the compartment already listed here.
DEFAULT_SCOPES = (
    "openid fhirUser launch offline_access patient/Patient.ru patient/AllergyIntolerance.crus "
    "patient/MedicationStatement.crus patient/Condition.crus patient/Observation.crus "
    "patient/Procedure.crus patient/Consent.crus patient/RelatedPerson.crs "
    "patient/QuestionnaireResponse.crus "
    "patient/Media.crs patient/Binary.cr patient/Provenance.cr "
    "patient/AuditEvent.c patient/Task.crus patient/DocumentReference.crs "
    "user/Practitioner.crs user/PractitionerRole.crs"
)

DEFAULTS: dict[str, Any] = {
    "SYMFHIR_CLIENT_ID": "symfhir",
    "SYMFHIR_BASE_URL": "http://localhost:5000",
    "SYMFHIR_TRUSTED_ISS": ["http://localhost:5100/fhir"],
    "SYMFHIR_EHR_ORIGINS": ["http://localhost:5100"],
    "SYMFHIR_TOKEN_KEYS": [],
    "SYMFHIR_PRIVATE_KEY_FILE": None,
    "SYMFHIR_KEY_ID": None,
    "SYMFHIR_SESSION_DIR": None,
    "SYMFHIR_SCOPES": DEFAULT_SCOPES,
    # The privacy officer's dashboard: a user-level launch (no patient), and the officer is
    # the one who answers every kind of request. Reads: *.rs (matching requesters to clients,
    # an access package's whole record; a user-level token is bound to no client, so naming
    # each type would narrow nothing that matters). Writes, listed rather than user/*.cruds,
    # so that no bug can create clinical records or touch the audit trail or the requests:
    # - Task.u, AuditEvent.c: stepping requests, the audit trail (never changed or deleted);
    # - d on every type mappings/retention.yaml lets go, now or once its years have passed
    #   (a deletion request after them deletes medical records too; HAPI's $expunge of what
    #   it deleted counts as d); never Task or AuditEvent, kept forever;
    # - u on what a deletion keeps but changes (Patient: contact details removed and the
    #   retention tag by $meta-add/$meta-delete; Provenance unlinked; Media, DocumentReference,
    #   Consent, Binary stripped of their files) and on Consent (restriction and opt-out
    #   withdraw consents: a versioned update), with Provenance.c recording each withdrawal.
    # tests/app/test_privacy_dashboard.py checks this list against retention.yaml.
    "SYMFHIR_OFFICER_SCOPES": (
        "openid fhirUser launch user/*.rs user/Task.u user/AuditEvent.c "
        "user/Patient.ud user/RelatedPerson.d user/Consent.ud user/Provenance.cud "
        "user/Media.ud user/Binary.ud user/DocumentReference.ud "
        "user/QuestionnaireResponse.d user/Observation.d user/AllergyIntolerance.d "
        "user/MedicationStatement.d user/MedicationRequest.d user/Condition.d "
        "user/Procedure.d user/Encounter.d user/CarePlan.d user/DiagnosticReport.d "
        "user/ServiceRequest.d user/Composition.d"
    ),
    # None: Secure exactly when SYMFHIR_BASE_URL is https (see session_store.cookie_flags).
    "SYMFHIR_COOKIE_SECURE": None,
    "SYMFHIR_SESSION_IDLE_SECONDS": 1800,
    "SYMFHIR_SESSION_MAX_SECONDS": 8 * 3600,
    "SYMFHIR_HTTP_TIMEOUT": 10.0,
    # Request bodies (smart_app.request_limits): the most any request but the photo upload
    # may carry, and the ceiling of every request (None: the photo upload's limit).
    "SYMFHIR_MAX_REQUEST_BYTES": 1024 * 1024,
    "SYMFHIR_MAX_UPLOAD_BYTES": None,
    # Session files of launches not (yet) signed in, kept at most (smart_app.session_store).
    "SYMFHIR_MAX_PENDING_SESSIONS": 1000,
    # The audit channel (smart_app.audit): AuditEvents of launches without AuditEvent create
    # are written with the app's own SMART Backend Services token of this scope.
    "SYMFHIR_AUDIT_BACKEND": True,
    "SYMFHIR_AUDIT_SCOPE": "system/AuditEvent.c",
    # Staff MFA (privacy policy §5): the EHR's sign-in must show multi-factor authentication
    # in its id_token (amr "mfa", or acr equal to SYMFHIR_REQUIRED_ACR when set).
    "SYMFHIR_REQUIRE_MFA": False,
    "SYMFHIR_REQUIRED_ACR": None,
    # Physician sharing (the chart's Sharing tab): the public link service where links are
    # opened (its manifest and viewer URLs go into each link). Links and their encrypted files
    # are written to the app's store (SYMFHIR_STORE_URL, SYMFHIR_STORE_KEYS), which that
    # service reads: both must name the same database and keys.
    "SYMFHIR_LINKS_BASE_URL": "http://localhost:5300",
    "SECRET_KEY": None,
}
LISTS = frozenset({"SYMFHIR_TRUSTED_ISS", "SYMFHIR_EHR_ORIGINS", "SYMFHIR_TOKEN_KEYS"})
INTEGERS = frozenset(
    {
        "SYMFHIR_SESSION_IDLE_SECONDS",
        "SYMFHIR_SESSION_MAX_SECONDS",
        "SYMFHIR_MAX_REQUEST_BYTES",
        "SYMFHIR_MAX_UPLOAD_BYTES",
        "SYMFHIR_MAX_PENDING_SESSIONS",
    }
)
#: v2 letters in order, or v1 read/write/*; AuditEvent only (never a wildcard type).
SYSTEM_AUDIT_SCOPE = re.compile(r"^system/AuditEvent\.(?!$)(c?r?u?d?s?|read|write|\*)$")
BOOLEANS = frozenset({"SYMFHIR_COOKIE_SECURE", "SYMFHIR_AUDIT_BACKEND", "SYMFHIR_REQUIRE_MFA"})
FLOATS = frozenset({"SYMFHIR_HTTP_TIMEOUT"})


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """The merged settings, normalised (URLs without a trailing slash, lists as lists).

    Raises ConfigError for an unreadable file or a bad value.
    """
    values: dict[str, Any] = dict(DEFAULTS)
    path = (overrides or {}).get("SYMFHIR_APP_CONFIG") or environ.get("SYMFHIR_APP_CONFIG")
    if path:
        values.update(_read_file(Path(path)))
    for key in DEFAULTS:
        if environ.get(key):
            values[key] = environ[key]
    values.update(overrides or {})
    for key in list(values):
        values[key] = _typed(key, values[key])
    values["SYMFHIR_BASE_URL"] = _url("SYMFHIR_BASE_URL", values["SYMFHIR_BASE_URL"])
    values["SYMFHIR_TRUSTED_ISS"] = [
        _url("SYMFHIR_TRUSTED_ISS", u) for u in values["SYMFHIR_TRUSTED_ISS"]
    ]
    values["SYMFHIR_EHR_ORIGINS"] = [
        _url("SYMFHIR_EHR_ORIGINS", u) for u in values["SYMFHIR_EHR_ORIGINS"]
    ]
    values["SYMFHIR_LINKS_BASE_URL"] = _url(
        "SYMFHIR_LINKS_BASE_URL", values["SYMFHIR_LINKS_BASE_URL"]
    )
    values["SYMFHIR_AUDIT_SCOPE"] = _audit_scope(values["SYMFHIR_AUDIT_SCOPE"])
    values["SYMFHIR_REDIRECT_URI"] = values["SYMFHIR_BASE_URL"] + "/callback"
    if values["SYMFHIR_COOKIE_SECURE"] is None:
        values["SYMFHIR_COOKIE_SECURE"] = values["SYMFHIR_BASE_URL"].startswith("https://")
    return values


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the app config ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(document) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown setting")
    return document


def _typed(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in LISTS:
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{key}: must be a list of strings")
    if key in BOOLEANS:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: must be true or false")
    try:
        if key in INTEGERS:
            if int(value) < 1:
                raise ConfigError(f"{key}: must be a positive number")
            return int(value)
        if key in FLOATS:
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: must be a number") from None
    return value


def _audit_scope(value: object) -> str:
    """The audit channel's scope: `system/AuditEvent` scopes only (v1 or v2), one of them
    allowing create — so its token cannot touch patient data even if the EHR granted more."""
    items = value.split() if isinstance(value, str) else []
    permissions = [m.group(1) for m in map(SYSTEM_AUDIT_SCOPE.match, items) if m]
    if not items or len(permissions) != len(items):
        raise ConfigError(
            "SYMFHIR_AUDIT_SCOPE: must be system/AuditEvent scopes, e.g. system/AuditEvent.c"
        )
    if not any(p in ("write", "*") or "c" in p for p in permissions):
        raise ConfigError("SYMFHIR_AUDIT_SCOPE: must allow create (.c, .write or .*)")
    return " ".join(items)


def _url(key: str, url: object) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{key}: must be an http(s) URL")
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: must be an http(s) URL")
    return url
