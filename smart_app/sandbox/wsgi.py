"""The sandbox's WSGI entry point: ``gunicorn --workers 1 --threads 8 smart_app.sandbox.wsgi:app``.

Exactly one worker process: launch codes, authorization codes, refresh tokens and the signing
key live in its memory, so a second process would refuse what the first one issued.
"""

from smart_app.sandbox import create_sandbox

app = create_sandbox()
