"""The WSGI entry point for a production server: ``scripts/serve app`` runs
``gunicorn smart_app.wsgi:app``.

Worker processes share sessions through SYMFHIR_SESSION_DIR and must share the keys: set
SYMFHIR_TOKEN_KEYS, SYMFHIR_PRIVATE_KEY_FILE and SYMFHIR_SESSION_DIR, or start gunicorn with
``--preload`` so that the keys and folder made at start are made once, before the fork.
"""

from smart_app import create_app

app = create_app()
