"""Telling people things: e-mail over real SMTP (``email``), text messages through a
pluggable sender (``sms``), and a local mail catcher for tests and the demo (``catcher``).
Addresses are put in their normal form by ``symfhir.contacts``."""
