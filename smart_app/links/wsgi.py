"""The WSGI entry point of the SMART Health Link service: ``gunicorn smart_app.links.wsgi:app``
(``scripts/serve links``).

Workers must share the store: SYMFHIR_STORE_URL and SYMFHIR_STORE_KEYS, the same as the
app's, which writes the links (the service only reads them, counts accesses and failures).
"""

from smart_app.links import create_app

app = create_app()
