"""`create_sandbox()`: the sandbox EHR's Flask application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from .auth_server import SandboxState
from .config import load_clients, load_settings


def create_sandbox(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the sandbox app; `config` overrides env vars and defaults (see the package doc).

    Raises config.ConfigError for an invalid client registration.
    """
    from . import authorize, launcher, mailbox, proxy

    settings = load_settings(config)
    app = Flask(__name__, static_folder=None)
    app.config.update(settings)
    state = SandboxState(
        base_url=settings["SANDBOX_BASE_URL"],
        upstream=settings["SANDBOX_FHIR_UPSTREAM"],
        clients=load_clients(settings),
    )
    app.extensions["sandbox"] = state
    app.extensions["sandbox_server"] = state.create_server(app)
    app.register_blueprint(authorize.bp)
    app.register_blueprint(launcher.bp)
    app.register_blueprint(proxy.bp)
    app.register_blueprint(mailbox.bp)
    return app
