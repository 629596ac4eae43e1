"""A hostile corpus: every row ends mapped or rejected, counts add up, nothing crashes."""

import csv
import json

import pytest
from fhir.resources.R4B import get_fhir_model_class

from symfhir.cli import main

pytestmark = pytest.mark.unit

HEADER = ["client_id", "given_name", "family_name", "birth_date", "intake_date", "conditions"]


def row(cid, given="Avery", family="Quillfeather", conditions=""):
    return [cid, given, family, "1990-01-01", "2026-01-05", conditions]


def write_csv(path, rows, header=HEADER):
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def map_file(path, tmp_path):
    out, rejects = tmp_path / "out.ndjson", tmp_path / "rejects.csv"
    code = main(
        [
            "map",
            str(path),
            "-o",
            str(out),
            "--rejects",
            str(rejects),
            "--as-of",
            "2026-11-25T09:30:00-06:00",
        ]
    )
    bundles = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for bundle in bundles:
        get_fhir_model_class("Bundle").model_validate(bundle)
    with rejects.open(encoding="utf-8", errors="replace", newline="") as fh:
        rejected = list(csv.DictReader(fh))
    return code, bundles, rejected


UNICODE_AND_INJECTION = [
    row("H001", "Zoë", "Ñúñez-Ørsted"),
    row("H002", "李", "小龙"),
    row("H003", "مريم", "الحسيني"),
    row("H004", "Ana\u0301", "Gómez 🌸"),
    row("H005", "Robert'); DROP TABLE clients;--", "Tables"),
    row("H006", "<script>alert(1)</script>", "Xss", conditions="<img src=x onerror=alert(1)>"),
    row("H007", '=HYPERLINK("http://x")', "Formula", conditions="@SUM(1+1); +cmd|' /C calc'!A0"),
    row("H008", "{{7*7}}", "${jndi:ldap://x}"),
    row("H009", "Multi\nLine", "Name"),
    row("H010", "Tab\tbed", "Name\x00Nul"),
]


def test_unicode_and_injection_strings_are_plain_text(tmp_path):
    path = tmp_path / "clients.csv"
    write_csv(path, UNICODE_AND_INJECTION)
    code, bundles, rejected = map_file(path, tmp_path)
    assert code == 0, rejected
    assert len(bundles) == len(UNICODE_AND_INJECTION)
    names = [
        e["resource"]["name"][0]
        for b in bundles
        for e in b["entry"]
        if e["resource"]["resourceType"] == "Patient"
    ]
    assert names[1] == {"use": "official", "family": "小龙", "given": ["李"]}
    assert names[4]["given"] == ["Robert'); DROP TABLE clients;--"]
    assert names[9]["family"] == "NameNul"  # control characters dropped


def test_huge_cells_duplicates_and_ragged_rows(tmp_path):
    path = tmp_path / "clients.csv"
    rows = [
        row("G001"),
        row("G002", conditions="x" * 3_000_000),
        row("G001", given="Again"),
        [*row("G003"), "extra", "cells"],
        row("G004"),
        ["G005"],  # short row: required cells missing
    ]
    write_csv(path, rows)
    code, bundles, rejected = map_file(path, tmp_path)
    assert code == 1
    assert len(bundles) + len(rejected) == len(rows)
    reasons = {r["_record"]: f"{r['_field']}: {r['_reason']}" for r in rejected}
    assert "too long" in reasons["clients.csv row 3"]
    assert "duplicate client id" in reasons["clients.csv row 4"]
    assert "more cells than the header" in reasons["clients.csv row 5"]
    assert (
        "given_name" in reasons["clients.csv row 7"] or "required" in reasons["clients.csv row 7"]
    )
    assert len(bundles) == 2


def test_wrong_encoding_rejects_only_the_bad_rows(tmp_path):
    path = tmp_path / "clients.csv"
    good = "client_id,given_name,family_name,birth_date,intake_date\n"
    good += "E001,Ana,Smithers,1990-01-01,2026-01-05\n"
    bad = "E002,Ren\xe9e,Lacroix,1990-01-01,2026-01-05\n".encode("cp1252")
    path.write_bytes(
        ("\ufeff" + good).encode("utf-8") + bad + b"E003,Bo,Lee,1991-02-02,2026-01-05\r\n"
    )
    code, bundles, rejected = map_file(path, tmp_path)
    assert code == 1
    assert len(bundles) == 2
    (reject,) = rejected
    assert reject["_record"] == "clients.csv row 3"
    assert reject["_field"] == "given_name"
    assert "UTF-8" in reject["_reason"]


def test_header_only_file_maps_nothing(tmp_path):
    path = tmp_path / "clients.csv"
    write_csv(path, [])
    code, bundles, rejected = map_file(path, tmp_path)
    assert (code, bundles, rejected) == (0, [], [])


def test_binary_garbage_does_not_crash(tmp_path, capsys):
    path = tmp_path / "clients.csv"
    path.write_bytes(bytes(range(256)) * 20)
    code = main(["map", str(path), "-o", str(tmp_path / "o.ndjson")])
    assert code in (1, 2)
    assert "Traceback" not in capsys.readouterr().err


def test_json_and_ndjson_inputs(tmp_path):
    objects = [dict(zip(HEADER, row(f"J00{i}"), strict=True)) for i in range(3)]
    objects[1]["birth_date"] = "yesterday"
    (tmp_path / "c.json").write_text(json.dumps(objects), encoding="utf-8")
    code, bundles, rejected = map_file(tmp_path / "c.json", tmp_path)
    assert (code, len(bundles), len(rejected)) == (1, 2, 1)
    assert rejected[0]["_record"] == "c.json row 2"
    lines = [json.dumps(o) for o in objects] + ["{not json"]
    (tmp_path / "c.ndjson").write_text("\n".join(lines), encoding="utf-8")
    code, bundles, rejected = map_file(tmp_path / "c.ndjson", tmp_path)
    assert (code, len(bundles), len(rejected)) == (1, 2, 2)
