"""FHIR R4 validation: the R4B reference, a shape-cached fast path, project rules, files."""

from symfhir.validation.fast import FastValidator
from symfhir.validation.rules import bundle_rules
from symfhir.validation.structural import Problem, validate_resource

__all__ = ["FastValidator", "Problem", "bundle_rules", "validate_resource"]
