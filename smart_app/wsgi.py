"""The WSGI entry point for a production server, e.g. ``gunicorn smart_app.wsgi:app``."""

from smart_app import create_app

app = create_app()
