"""`symfhir map` and `symfhir validate` end to end on the synthetic sample and hostile input."""

import csv
import io
import json
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from PIL import Image

from symfhir.cardnumbers import has_card_number
from symfhir.cli import main
from tests.conftest import AS_OF, SAMPLE, map_sample

pytestmark = pytest.mark.unit


def run(*args: str) -> int:
    return main(["map", *args, "--as-of", AS_OF])


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("map")
    code = map_sample(out / "bundles.ndjson", "--rejects", str(out / "rejects.csv"))
    return code, out


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_sample_counts_add_up(sample_run):
    code, out = sample_run
    assert code == 1  # the sample has deliberately invalid rows
    rows = read_csv(SAMPLE / "clients.csv")
    bundles = (out / "bundles.ndjson").read_text(encoding="utf-8").splitlines()
    rejects = read_csv(out / "rejects.csv")
    assert len(bundles) + len(rejects) == len(rows)
    assert len(bundles) == 30
    photos = read_csv(SAMPLE / "photos.csv")
    photo_rejects = read_csv(out / "rejects-photos.csv")
    media = sum(line.count('"resourceType":"Media"') for line in bundles)
    assert media + len(photo_rejects) == len(photos)


EXPECTED_REJECTS = {
    "C0031": ("birth_date", "future"),
    "C0032": ("guardian", "under 18"),
    "C0033": ("email", "email"),
    "C0034": ("phone_mobile", "phone"),
    "C0035": ("skin_concerns", "unknown skin_concern"),
    "C0036": ("conditions", "card number"),
    "C0037": ("given_name", "empty"),
    "C0038": ("intake_date", "date"),
    "C0039": ("consent_photos_social", "withdrawn_on"),
    "C0040": ("consent_research", "given"),
    "C0041": ("treatments", "JSON"),
    "C0042": ("treatments", "unknown body_site"),
}


def test_each_invalid_row_is_rejected_with_field_and_reason(sample_run):
    _, out = sample_run
    rejects = read_csv(out / "rejects.csv")
    by_id = {}
    for r in rejects:
        by_id.setdefault(r["client_id"], []).append(r)
    for client_id, (field, says) in EXPECTED_REJECTS.items():
        (reject,) = by_id[client_id]
        text = f"{reject['_field']} {reject['_reason']}"
        assert field in text and says.lower() in text.lower(), (client_id, text)
        assert reject["_record"].startswith("clients.csv row ")
    (duplicate,) = by_id["C0003"]
    assert "duplicate client id" in duplicate["_reason"]
    assert "row 4" in duplicate["_reason"]


def test_every_output_resource_validates(sample_run):
    _, out = sample_run
    for line in (out / "bundles.ndjson").read_text(encoding="utf-8").splitlines():
        bundle = json.loads(line)
        get_fhir_model_class("Bundle").model_validate(bundle)
    assert main(["validate", str(out / "bundles.ndjson")]) == 0


def test_minor_is_mapped_with_guardian(sample_run):
    _, out = sample_run
    lines = (out / "bundles.ndjson").read_text(encoding="utf-8").splitlines()
    minor = next(json.loads(line) for line in lines if '"value":"C0007"' in line)
    kinds = [e["resource"]["resourceType"] for e in minor["entry"]]
    assert kinds.count("RelatedPerson") == 2
    guardian = next(
        e
        for e in minor["entry"]
        if e["resource"]["resourceType"] == "RelatedPerson"
        and "guardian" in e["request"]["ifNoneExist"]
    )
    for e in minor["entry"]:
        if e["resource"]["resourceType"] == "Consent":
            assert e["resource"]["performer"] == [{"reference": guardian["fullUrl"]}]


def test_photos_are_stored_without_metadata(sample_run):
    _, out = sample_run
    import base64

    seen = 0
    for line in (out / "bundles.ndjson").read_text(encoding="utf-8").splitlines():
        for entry in json.loads(line)["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] != "Binary":
                continue
            data = base64.b64decode(resource["data"])
            image = Image.open(io.BytesIO(data))
            assert not image.getexif()
            assert "exif" not in image.info
            seen += 1
    assert seen > 5


def test_rejects_file_can_be_fixed_and_rerun(sample_run, tmp_path):
    _, out = sample_run
    rows = read_csv(out / "rejects.csv")
    fixed = [r for r in rows if r["client_id"] == "C0033"]
    fixed[0]["email"] = "fixed@example.com"
    path = tmp_path / "fixed.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(fixed)
    # Signed forms named in the row are relative to the original export's folder.
    assert run(str(path), "-o", str(tmp_path / "o.ndjson"), "--base-dir", str(SAMPLE)) == 0
    assert run(str(path), "-o", str(tmp_path / "o.ndjson")) == 1


def test_single_json_bundle_output(tmp_path):
    out = tmp_path / "all.json"
    code = run(str(SAMPLE / "clients.csv"), "-o", str(out))
    assert code == 1
    bundle = json.loads(out.read_text(encoding="utf-8"))
    get_fhir_model_class("Bundle").model_validate(bundle)
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    assert sum(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"]) == 30


def test_summary_line(capsys, tmp_path):
    run(str(SAMPLE / "clients.csv"), "-o", str(tmp_path / "o.ndjson"))
    assert "43 records: 30 mapped, 13 rejected" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope.csv", "-o", "x.ndjson"], "not found"),
        ([str(SAMPLE / "clients.csv"), "--mapping", "nosuch", "-o", "x.ndjson"], "no mapping"),
    ],
)
def test_fatal_errors_exit_2_without_traceback(args, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err


def test_rejects_file_masks_card_numbers_and_the_row_still_reimports(sample_run, tmp_path):
    _, out = sample_run
    source = next(r for r in read_csv(SAMPLE / "clients.csv") if r["client_id"] == "C0036")
    assert has_card_number(source["conditions"])  # the sample row holds one
    rows = read_csv(out / "rejects.csv")
    (reject,) = [r for r in rows if r["client_id"] == "C0036"]
    assert not any(has_card_number(v) for v in reject.values())
    assert "[card number removed]" in reject["conditions"]
    # The masked text is ordinary text: the same file goes back in as it is.
    path = tmp_path / "again.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow(reject)
    bundles = tmp_path / "o.ndjson"
    assert run(str(path), "-o", str(bundles), "--base-dir", str(SAMPLE)) == 0
    assert "[card number removed]" in bundles.read_text(encoding="utf-8")


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_every_rejects_format_masks_card_numbers(tmp_path, suffix):
    from symfhir.sources.rejects import Reject, RejectsLog, write_rejects

    row = {"client_id": "C1", "notes": "paid with 4111 1111 1111 1111", "extra": None}
    nested = {"client_id": "C2", "treatments": [{"note": "card 4111111111111111"}]}
    reason = "the FHIR server refused it: value 4111111111111111 not allowed"
    items = [Reject("r1", "notes", reason, row), Reject("r2", "treatments", "bad", nested)]
    path = tmp_path / f"rejects{suffix}"
    write_rejects(path, items)
    text = path.read_text(encoding="utf-8")
    assert "4111" not in text and text.count("[card number removed]") == 3
    log_path = tmp_path / "import-rejects.ndjson"
    log = RejectsLog(log_path, ["client_id", "notes"])
    for item in items:
        log.write(item)
    log.close()
    assert "4111" not in log_path.read_text(encoding="utf-8")
