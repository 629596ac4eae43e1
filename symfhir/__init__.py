"""symfhir: a medical spa's records as validated FHIR R4 resources (library and command)."""

__version__ = "0.1.0"
