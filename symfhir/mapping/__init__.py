"""Pure mapping from spa records to FHIR R4 resources (plain dicts, validated downstream)."""
