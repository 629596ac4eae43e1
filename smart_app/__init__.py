"""symfhir's SMART on FHIR web app: ``create_app`` builds it."""

from smart_app.app import create_app

__all__ = ["create_app"]
