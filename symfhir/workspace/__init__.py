"""Practitioner workspace logic (intake, consents, photos): pure functions the app's views call."""
