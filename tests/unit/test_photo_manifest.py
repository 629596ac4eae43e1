"""Photo manifests: entries or rejects for every row, safe paths, dates, codes and encodings."""

import csv
import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from PIL import ExifTags, Image
from pydantic import ValidationError

from symfhir.errors import ConfigError, PhotoError, RecordError
from symfhir.model.photo import Photo
from symfhir.photos.files import ImageLimits
from symfhir.photos.manifest import ManifestEntry, load_photo, read_manifest
from symfhir.sources.rejects import write_rejects
from symfhir.terminology import parse_terminology
from tests.conftest import SAMPLE

pytestmark = pytest.mark.unit

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=CHICAGO)
HEADER = ["client_id", "file", "taken_at", "body_site", "view", "phase", "treatment_id"]
BODY_SITES = [
    "face",
    "forehead",
    "glabella",
    "crows_feet",
    "periorbital",
    "under_eye",
    "cheeks",
    "nose",
    "nasolabial_folds",
    "lips",
    "perioral",
    "marionette_lines",
    "chin",
    "jawline",
    "neck",
    "decolletage",
    "chest",
    "abdomen",
    "back",
    "arms",
    "hands",
    "thighs",
    "buttocks",
    "legs",
    "scalp",
    "axillae",
]
VIEWS = ["frontal", "left_oblique", "right_oblique", "left_lateral", "right_lateral", "close_up"]


@pytest.fixture(scope="module")
def terms():
    return parse_terminology(
        {
            "body_site": {k: {"system": "urn:test:site", "code": k} for k in BODY_SITES},
            "photo_view": {k: {"system": "urn:test:view", "code": k} for k in VIEWS},
        }
    )


@pytest.fixture
def context(terms):
    return {"terminology": terms, "now": NOW, "tz": "America/Chicago"}


def valid(**changes):
    row = {
        "client_id": "C0001",
        "file": "photos/a.jpg",
        "taken_at": "2026-03-01T14:30:00-06:00",
        "body_site": "lips",
        "view": "close_up",
        "phase": "before",
        "treatment_id": "C0001-T1",
    }
    row.update(changes)
    return row


def write_csv(path, rows, header=HEADER, encoding="utf-8"):
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def jpeg(size=(32, 24), orientation=1):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 90)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


# --- the model -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-03-01T14:30:00-06:00", "2026-03-01T14:30:00-06:00"),
        ("2026-03-01T20:30:00Z", "2026-03-01T20:30:00+00:00"),
        ("2026-03-01 14:30", "2026-03-01T14:30:00-06:00"),
        ("2026-07-01 14:30", "2026-07-01T14:30:00-05:00"),  # daylight saving time
        ("2026-03-01", "2026-03-01T00:00:00-06:00"),
        (" 2026-03-01 ", "2026-03-01T00:00:00-06:00"),
    ],
)
def test_taken_at_formats(given, expected, context):
    photo = Photo.model_validate(valid(taken_at=given), context=context)
    assert photo.taken_at.isoformat() == expected
    assert photo.taken_at.tzinfo is not None


def test_times_without_offset_use_the_context_zone(context):
    photo = Photo.model_validate(
        valid(taken_at="2026-03-01 14:30"), context={**context, "tz": "Europe/Paris"}
    )
    assert photo.taken_at.isoformat() == "2026-03-01T14:30:00+01:00"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("2026-02-30", "not a real date"),
        ("2026-13-01 10:00", "not a real date"),
        ("03/01/2026", "ISO 8601"),
        ("yesterday", "ISO 8601"),
        ("", "must not be empty"),
        ("2026-11-25 09:31", "future"),
        ("2027-01-15", "future"),
        ("1850-01-01", "before 1900"),
    ],
)
def test_bad_taken_at(given, says, context):
    with pytest.raises(ValidationError) as caught:
        Photo.model_validate(valid(taken_at=given), context=context)
    (error,) = caught.value.errors()
    assert error["loc"] == ("taken_at",)
    assert says in error["msg"]


def test_now_defaults_to_the_current_time(terms):
    with pytest.raises(ValidationError, match="future"):
        Photo.model_validate(valid(taken_at="2999-01-01"), context={"terminology": terms})


@pytest.mark.parametrize(
    ("context_change", "says"),
    [({"tz": "Mars/Olympus_Mons"}, "time zone"), ({"now": datetime(2026, 11, 25)}, "aware")],
)
def test_bad_validation_context_is_a_config_error(context, context_change, says):
    with pytest.raises(ConfigError, match=says):
        Photo.model_validate(
            valid(taken_at="2026-03-01 10:00"), context={**context, **context_change}
        )


@pytest.mark.parametrize(
    ("field", "given", "expected"),
    [
        ("view", "Left Oblique", "left_oblique"),
        ("view", "RIGHT-LATERAL", "right_lateral"),
        ("body_site", "Crows-Feet", "crows_feet"),
        ("body_site", " Under Eye ", "under_eye"),
        ("phase", " After ", "after"),
        ("client_id", " C0001 ", "C0001"),
        ("treatment_id", "", None),
        ("treatment_id", "  ", None),
        ("treatment_id", None, None),
        ("file", "photos\\a.jpg", "photos/a.jpg"),
        ("file", "./photos//a.jpg", "photos/a.jpg"),
    ],
)
def test_values_are_normalised(field, given, expected, context):
    photo = Photo.model_validate(valid(**{field: given}), context=context)
    assert getattr(photo, field) == expected


@pytest.mark.parametrize(
    ("field", "given", "says"),
    [
        ("file", "/etc/passwd", "absolute"),
        ("file", "C:\\photos\\a.jpg", "absolute"),
        ("file", "\\\\server\\share\\a.jpg", "absolute"),
        ("file", "../a.jpg", ".."),
        ("file", "photos/../../a.jpg", ".."),
        ("file", "photos\\..\\..\\a.jpg", ".."),
        ("file", "", "empty"),
        ("file", "photos/", "folder"),
        ("client_id", "", "letters, digits"),
        ("client_id", "C 0001", "letters, digits"),
        ("body_site", "Synthetic Person's elbow", "unknown body_site"),
        ("view", "upside_down", "unknown photo_view"),
        ("phase", "during", "'before', 'after' or 'progress'"),
    ],
)
def test_bad_values(field, given, says, context):
    with pytest.raises(ValidationError) as caught:
        Photo.model_validate(valid(**{field: given}), context=context)
    errors = caught.value.errors(include_input=False)
    assert errors[0]["loc"][0] == field
    assert says in errors[0]["msg"]
    assert given.strip() == "" or given not in errors[0]["msg"]


def test_model_is_frozen_and_closed(context):
    photo = Photo.model_validate(valid(), context=context)
    with pytest.raises(ValidationError):
        photo.phase = "after"
    with pytest.raises(ValidationError, match="Extra inputs"):
        Photo.model_validate(valid(notes="x"), context=context)


# --- reading manifests -----------------------------------------------------------------------


def sample_rows():
    with (SAMPLE / "photos.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_sample_manifest_counts_add_up(terms):
    result = read_manifest(SAMPLE / "photos.csv", now=NOW, terminology=terms)
    rows = sample_rows()
    assert len(result.entries) + len(result.rejects) == len(rows)
    assert result.entries[0].row == 2
    assert result.entries[0].record == "photos.csv row 2"
    got = {r.record: (r.field, r.reason) for r in result.rejects}
    fields = sorted(field for field, _ in got.values())
    assert fields == ["body_site", "file", "taken_at"]
    for record, (field, reason) in got.items():
        row = rows[int(record.rsplit(" ", 1)[1]) - 2]
        assert row[field] not in reason  # never echo the value
    reject = next(r for r in result.rejects if r.field == "taken_at")
    assert reject.row["taken_at"] == "2027-01-15 10:00"  # the row as read, for a rerun
    assert "future" in reject.reason
    # C9999 has no client record, but that is found at join time, not here.
    assert any(e.photo.client_id == "C9999" for e in result.entries)


def test_sample_photos_load_or_are_refused_with_reasons(terms):
    result = read_manifest(SAMPLE / "photos.csv", now=NOW, terminology=terms)
    refused = {}
    loaded = []
    for entry in result.entries:
        try:
            loaded.append(load_photo(entry, SAMPLE))
        except PhotoError as err:
            assert err.record == entry.record
            refused[entry.photo.file] = err.reason
    assert len(loaded) >= 20
    assert "not an image" in refused.pop("photos/not-an-image.jpg")
    assert "decompression bomb" in refused.pop("photos/bomb.png")
    assert "truncated or corrupt" in refused.pop("photos/truncated.jpg")
    assert "GIF" in refused.pop("photos/animation.gif")
    assert not refused
    for image in loaded:
        reopened = Image.open(io.BytesIO(image.data))
        assert not reopened.getexif()
        assert "exif" not in reopened.info and "icc_profile" not in reopened.info
    assert sum(i.taken_at is not None for i in loaded) >= 15
    assert any(i.height > i.width for i in loaded)  # orientation tags were applied


def test_sample_folder_is_small():
    total = sum(p.stat().st_size for p in (SAMPLE / "photos").iterdir())
    assert total < 600 * 1024


def test_json_manifest(tmp_path, terms):
    items = [
        valid(),
        {**valid(view="sideways"), "_record": "old.csv row 9", "_reason": "ignored"},
        "not an object",
        {"client_id": "C0002", "file": "b.png"},
        valid(file="c.jpg", treatment_id=None, extra_key=1),
    ]
    path = tmp_path / "photos.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    result = read_manifest(path, now=NOW, terminology=terms)
    assert [e.row for e in result.entries] == [1]
    assert [(r.record, r.field) for r in result.rejects] == [
        ("photos.json row 2", "view"),
        ("photos.json row 3", "row"),
        ("photos.json row 4", "taken_at"),
        ("photos.json row 5", "extra_key"),
    ]
    assert "_record" not in result.rejects[0].row
    assert "+3 more" in result.rejects[2].reason  # taken_at, body_site, view, phase


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"client_id": "C0001"}', "JSON array"),
        ("[{]", "not valid JSON"),
    ],
)
def test_unusable_json_manifest(tmp_path, terms, content, says):
    path = tmp_path / "photos.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RecordError, match=says):
        read_manifest(path, now=NOW, terminology=terms)


def test_rejects_file_can_be_fixed_and_read_again(tmp_path, terms):
    source = write_csv(tmp_path / "photos.csv", [valid(), valid(file="b.jpg", body_site="elbow")])
    first = read_manifest(source, now=NOW, terminology=terms)
    assert len(first.rejects) == 1
    rejects = tmp_path / "rejects.csv"
    write_rejects(rejects, first.rejects, HEADER)
    with rejects.open(encoding="utf-8", newline="") as fh:
        fixed = list(csv.DictReader(fh))
    fixed[0]["body_site"] = "Lips"
    write_csv(rejects, fixed, header=list(fixed[0]))
    again = read_manifest(rejects, now=NOW, terminology=terms)
    assert not again.rejects
    assert again.entries[0].photo.body_site == "lips"


def test_ragged_and_blank_rows(tmp_path, terms):
    path = tmp_path / "photos.csv"
    lines = [
        ",".join(HEADER),
        "C0001,a.jpg,2026-03-01,lips,frontal,before,,surplus",
        "",
        "C0001,b.jpg,2026-03-01",
        ",,,,,,",
        "C0001,c.jpg,2026-03-01,lips,frontal,before",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_manifest(path, now=NOW, terminology=terms)
    assert [e.record for e in result.entries] == ["photos.csv row 6"]
    got = [(r.record, r.field) for r in result.rejects]
    assert got[0] == ("photos.csv row 2", "row")
    assert "more cells" in result.rejects[0].reason
    assert [g[0] for g in got[1:]] == ["photos.csv row 4", "photos.csv row 5"]


def test_same_client_and_file_twice_is_rejected(tmp_path, terms):
    path = write_csv(
        tmp_path / "photos.csv", [valid(), valid(phase="after", file="./photos/a.jpg")]
    )
    result = read_manifest(path, now=NOW, terminology=terms)
    assert len(result.entries) == 1
    (reject,) = result.rejects
    assert reject.field == "file"
    assert "photos.csv row 2" in reject.reason


@pytest.mark.parametrize(
    ("encoding", "says"),
    [("latin-1", "not UTF-8"), ("cp1252", "not UTF-8"), ("utf-16", "UTF-16")],
)
def test_wrong_encoding_is_a_clear_error(tmp_path, terms, encoding, says):
    path = write_csv(tmp_path / "photos.csv", [valid(file="photos/café.jpg")], encoding=encoding)
    with pytest.raises(RecordError) as caught:
        read_manifest(path, now=NOW, terminology=terms)
    assert caught.value.record == "photos.csv"
    assert says in caught.value.reason
    assert "UTF-8" in caught.value.reason


def test_utf8_with_bom_is_fine(tmp_path, terms):
    path = write_csv(tmp_path / "photos.csv", [valid(file="photos/café.jpg")], encoding="utf-8-sig")
    (entry,) = read_manifest(path, now=NOW, terminology=terms).entries
    assert entry.photo.file == "photos/café.jpg"


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (["client_id", "file", "taken_at", "body_site", "phase"], "missing column(s): view"),
        ([*HEADER, "patient_name"], "unknown column(s): patient_name"),
    ],
)
def test_bad_header_is_a_clear_error(tmp_path, terms, header, says):
    path = tmp_path / "photos.csv"
    path.write_text(",".join(header) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        read_manifest(path, now=NOW, terminology=terms)
    assert says in caught.value.reason


def test_empty_manifest_has_no_rows(tmp_path, terms):
    path = tmp_path / "photos.csv"
    path.write_text("", encoding="utf-8")
    result = read_manifest(path, now=NOW, terminology=terms)
    assert (result.entries, result.rejects) == ([], [])


def test_naive_clock_or_unknown_zone_is_a_config_error(tmp_path, terms):
    path = write_csv(tmp_path / "photos.csv", [valid()])
    with pytest.raises(ConfigError):
        read_manifest(path, now=datetime(2026, 11, 25), terminology=terms)
    with pytest.raises(ConfigError):
        read_manifest(path, now=NOW, tz="Nowhere/Land", terminology=terms)


# --- loading the image files -----------------------------------------------------------------


def entry_for(file, context):
    photo = Photo.model_validate(valid(file=file), context=context)
    return ManifestEntry(row=2, photo=photo, record="photos.csv row 2")


def test_content_type_comes_from_the_bytes_not_the_name(tmp_path, context):
    out = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(out, "PNG")
    (tmp_path / "really-a-png.jpg").write_bytes(out.getvalue())
    image = load_photo(entry_for("really-a-png.jpg", context), tmp_path)
    assert image.content_type == "image/png"
    assert (image.width, image.height) == (20, 10)


def test_loaded_photo_is_clean_and_upright(tmp_path, context):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(jpeg(orientation=6))
    image = load_photo(entry_for("photos/a.jpg", context), tmp_path)
    assert (image.width, image.height) == (24, 32)
    assert not Image.open(io.BytesIO(image.data)).getexif()


def test_symlink_out_of_the_folder_is_refused(tmp_path, context):
    inside = tmp_path / "manifest"
    inside.mkdir()
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg())
    (inside / "link.jpg").symlink_to(outside)
    with pytest.raises(PhotoError, match="outside") as caught:
        load_photo(entry_for("link.jpg", context), inside)
    assert caught.value.record == "photos.csv row 2"


def test_traversal_is_refused_even_if_the_model_is_bypassed(tmp_path, context):
    (tmp_path / "secret.jpg").write_bytes(jpeg())
    base = tmp_path / "manifest"
    base.mkdir()
    photo = Photo.model_construct(**{**valid(), "file": "../secret.jpg"})
    entry = ManifestEntry(row=3, photo=photo, record="photos.csv row 3")
    with pytest.raises(PhotoError, match="outside"):
        load_photo(entry, base)


@pytest.mark.parametrize(
    ("setup", "limits", "says"),
    [
        (lambda d: None, ImageLimits(), "does not exist"),
        (lambda d: (d / "a.jpg").mkdir(), ImageLimits(), "not a file"),
        (
            lambda d: (d / "a.jpg").write_bytes(jpeg()),
            ImageLimits(max_bytes=10),
            "limit of 10 bytes",
        ),
        (lambda d: (d / "a.jpg").write_bytes(b""), ImageLimits(), "empty"),
        (lambda d: (d / "a.jpg").write_bytes(b"GIF89a" + b"\x00" * 20), ImageLimits(), "GIF"),
    ],
)
def test_load_photo_refusals(tmp_path, context, setup, limits, says):
    setup(tmp_path)
    with pytest.raises(PhotoError) as caught:
        load_photo(entry_for("a.jpg", context), tmp_path, limits)
    assert (caught.value.record, caught.value.field) == ("photos.csv row 2", "file")
    assert says in caught.value.reason
