"""``python -m smart_app``: the development server on SYMFHIR_BASE_URL's host and port."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from smart_app import create_app

_SECRET_PARAMS = re.compile(r"\b(code|state|launch|iss)=[^&\s\"]*")


class _RedactQuery(logging.Filter):
    """The dev server's access log would show the authorization code and state of /callback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _SECRET_PARAMS.sub(r"\1=<redacted>", record.getMessage())
        record.args = ()
        return True


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("werkzeug").addFilter(_RedactQuery())
    app = create_app()
    parts = urlsplit(app.config["SYMFHIR_BASE_URL"])
    port = parts.port or (443 if parts.scheme == "https" else 80)
    app.run(host=parts.hostname or "localhost", port=port, debug=False)


if __name__ == "__main__":
    main()
