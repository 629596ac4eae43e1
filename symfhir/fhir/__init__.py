"""The FHIR client layer: configuration, transport with retries, auth, capabilities, client.

    from symfhir.fhir import FhirClient
    with FhirClient.from_config() as fhir:
        fhir.capabilities().require("Patient", "create", "import clients")
        written = fhir.create(patient, if_none_exist="identifier=urn:spa:client|C1")

Errors are the FhirServerError family of symfhir.errors (see translate's docstring).
"""

from symfhir.fhir.auth import BackendServicesAuth, BearerAuth, SmartTokenAuth, make_auth
from symfhir.fhir.capabilities import Capabilities
from symfhir.fhir.client import FhirClient
from symfhir.fhir.config import ServerConfig, load_config
from symfhir.fhir.outcome import log_text, parse_outcome, reason_text, redact
from symfhir.fhir.writes import Written, outcomes

__all__ = [
    "BackendServicesAuth",
    "BearerAuth",
    "Capabilities",
    "FhirClient",
    "ServerConfig",
    "SmartTokenAuth",
    "Written",
    "load_config",
    "log_text",
    "make_auth",
    "outcomes",
    "parse_outcome",
    "reason_text",
    "redact",
]
