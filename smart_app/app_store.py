"""The app's own database (``symfhir.store``) for the views that need it: physician-sharing
links live there, and the public link service reads the same database with the same keys."""

from __future__ import annotations

import logging

from flask import current_app

from smart_app.errors import AppError
from symfhir.errors import ConfigError
from symfhir.store import Store

log = logging.getLogger(__name__)

NOT_SET_UP = AppError(
    503,
    "store_not_set_up",
    "Sharing is not set up",
    "symfhir has no database for shared links here (SYMFHIR_STORE_KEYS is not set). "
    "Ask whoever runs symfhir to set it, with the same keys as the link service.",
)


def app_store() -> Store:
    """The store: ``SYMFHIR_STORE`` when given (tests), else made once per process from
    SYMFHIR_STORE_URL and SYMFHIR_STORE_KEYS. No key is made at start: the link service
    could not read what such a key sealed.

    Raises AppError 503 when the store is not configured.
    """
    app = current_app
    given = app.config.get("SYMFHIR_STORE")
    if given is not None:
        return given
    made = app.extensions.get("symfhir_store")
    if made is None:
        try:
            made = Store.from_env()
        except ConfigError as exc:
            log.warning("store: %s", exc)
            raise NOT_SET_UP from None
        app.extensions["symfhir_store"] = made
    return made
