"""The practitioner's workspace: one workflow function per thing a practitioner does with a
client's record, usable from the app, the command line and background jobs.

Every workflow takes the FHIR client, the acting user (``actor.Actor``), the patient id and an
audit trail (``symfhir.audit.AuditTrail``), and returns a frozen result object; refusals are
``NotAllowedError`` raised before anything is written. The workflows:

- ``summary.read_summary``;
- ``intake.saving.read_intake`` / ``save_intake``;
- ``consents.recording.read_consents`` / ``capture_consent`` / ``withdraw_consent``;
- ``photos.viewing.list_gallery`` / ``photo_image`` / ``compare_photos`` and
  ``photos.uploading.upload_photos``.

The other modules are the pure steps they are made of (forms, FHIR entries, view models);
``fallbacks`` reads and writes Consent and Media kept as DocumentReferences.
"""
