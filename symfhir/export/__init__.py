"""Portable export of one client's record and the access package of privacy requests.

``export_patient(client, actor, patient_id, out, *, fmt, password, now, audit)`` reads the
client's compartment (``collect``: $everything with paging, or per-type searches), stages it
on disk (``spool``) and writes a FHIR Bundle, NDJSON, an HTML report (``report``) or a ZIP of
them all with the photos and forms streamed from Binary (``package``). ``access_request``
is the privacy-request handler for access, portability and CCPA right to know.
"""

from symfhir.export.workflow import FORMATS, ExportResult, export_patient

__all__ = ["FORMATS", "ExportResult", "export_patient"]
