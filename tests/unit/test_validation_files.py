"""``validate_file`` on JSON, NDJSON and malformed input."""

from __future__ import annotations

import json

import pytest

from symfhir.validation.files import validate_file

pytestmark = pytest.mark.unit

OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
BAD = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "x"},
    "effectiveDateTime": "2025-02-30",
}


def test_single_valid_resource(tmp_path):
    path = tmp_path / "obs.json"
    path.write_text(json.dumps(OBS, indent=2))
    result = validate_file(path)
    assert list(result) == []
    assert (result.resource_count, result.problem_count) == (1, 0)


def test_single_invalid_resource(tmp_path):
    path = tmp_path / "obs.json"
    path.write_text(json.dumps(BAD))
    problems = list(validate_file(path))
    assert [(loc, p.path) for loc, p in problems] == [("obs.json", "Observation.effectiveDateTime")]


def test_malformed_json_is_a_problem_with_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "resourceType": "Patient",\n  "id": \n}')
    [(location, problem)] = list(validate_file(path))
    assert location == "broken.json"
    assert "line 4" in problem.message and "column" in problem.message


def test_ndjson_reports_line_numbers_and_counts(tmp_path):
    path = tmp_path / "export.ndjson"
    lines = [json.dumps(OBS), json.dumps(BAD), "", "{not json", json.dumps(OBS), "[1]"]
    path.write_text("\n".join(lines) + "\n")
    result = validate_file(path)
    found = [(loc, p.path) for loc, p in result]
    assert [loc for loc, _ in found] == ["line 2", "line 4", "line 6"]
    assert found[0][1] == "Observation.effectiveDateTime"
    assert result.resource_count == 4
    assert result.invalid_count == 3
    assert result.problem_count == 3


def test_json_file_holding_ndjson_is_read_per_line(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(OBS) + "\n" + json.dumps(BAD) + "\n")
    assert [loc for loc, _ in validate_file(path)] == ["line 2"]


def test_transaction_bundle_gets_structural_and_project_rules(tmp_path):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:e6044d18-b996-561e-b17e-ee5ff1006cc3",
                "resource": BAD,
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = validate_file(path)
    paths = {p.path for _, p in result}
    assert "Bundle.entry[0].resource.effectiveDateTime" in paths
    assert "Bundle.entry[0].request.ifNoneExist" in paths
    assert (result.bundle_count, result.resource_count) == (1, 1)


def test_ndjson_is_streamed(tmp_path):
    path = tmp_path / "many.ndjson"
    with path.open("w") as fh:
        for _ in range(2000):
            fh.write(json.dumps(OBS) + "\n")
    result = validate_file(path)
    assert next(iter(result), None) is None
    assert result.resource_count == 2000
