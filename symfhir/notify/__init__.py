"""Telling people things: e-mail over real SMTP (``email``), text messages through a pluggable
sender (``sms``), the normal form of an address (``addresses``), and a local mail catcher for
tests and the demo (``catcher``)."""
