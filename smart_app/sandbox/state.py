"""Access to the running sandbox's shared state from views."""

from __future__ import annotations

from flask import current_app

from .auth_server import SandboxAuthServer, SandboxState


def sandbox() -> SandboxState:
    return current_app.extensions["sandbox"]


def auth_server() -> SandboxAuthServer:
    return current_app.extensions["sandbox_server"]
