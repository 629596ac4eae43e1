"""The WSGI entry point of the client privacy portal: ``gunicorn smart_app.portal.wsgi:app``.

Worker processes must share SYMFHIR_MARKETING_KEY and SECRET_KEY (set them, or start gunicorn
with ``--preload`` so that the keys made at start are made once, before the fork), and the
store's SYMFHIR_STORE_KEYS (always set it: a code one worker issued is checked by another).
"""

from smart_app.portal import create_app

app = create_app()
