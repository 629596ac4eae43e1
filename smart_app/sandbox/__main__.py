"""`python -m smart_app.sandbox`: serve the sandbox on the port of SANDBOX_BASE_URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from .app import create_sandbox


def main() -> None:
    app = create_sandbox()
    base = urlsplit(app.config["SANDBOX_BASE_URL"])
    # werkzeug's threaded development server: enough for a local sandbox, not for production.
    app.run(host=base.hostname or "localhost", port=base.port or 80, threaded=True)


if __name__ == "__main__":
    main()
