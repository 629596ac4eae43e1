"""The app's own small store (SQLAlchemy 2): what has no FHIR home — verification codes, rate
counters and signed links of the privacy portal.

A SQLite file by default (``SYMFHIR_STORE_URL``, e.g. ``sqlite:///out/symfhir.db``), PostgreSQL
by URL when several processes share it. Tables are created on first use. E-mail addresses and
phone numbers are sealed with MultiFernet (``SYMFHIR_STORE_KEYS``) and found again by an HMAC of
the normalized value, so a rate limit per address works without the address in clear.
"""

from symfhir.store.database import Store

__all__ = ["Store"]
