"""Generate the synthetic client sample: tests/data/sample/clients.csv and signed forms.

Deterministic (seeded). Every person is invented: names are made-up, emails use
example.com/.org, phone numbers are in the 555-01xx fictional range. Run from the
repository root: `python scripts/make_sample_clients.py`.
"""

from __future__ import annotations

import csv
import json
import random
import zlib
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "sample"
# Every consent kind the mappings define, in their order.
KINDS = list(
    yaml.safe_load((OUT.parents[2] / "mappings" / "consent-kinds.yaml").read_text())["kinds"]
)
GIVEN = [
    "Avery",
    "Jordan",
    "Rowan",
    "Marisol",
    "Keiko",
    "Amara",
    "Lucía",
    "Thuy",
    "Noor",
    "Elodie",
    "Priya",
    "Zainab",
    "Camille",
    "Björn",
    "Dana",
    "Ines",
    "Mei",
    "Sasha",
    "Olamide",
    "Renée",
    "Tomás",
    "Yara",
    "Hana",
    "Farah",
    "Greta",
    "Ivy",
    "Lena",
    "Maya",
    "Nadia",
    "Ophelia",
]
FAMILY = [
    "Quillfeather",
    "Brightwater",
    "Ashgrove",
    "Fenwick-Lark",
    "Marrowby",
    "Tindall",
    "Oakhollow",
    "Vantreese",
    "Kestrelmoor",
    "Duskwood",
    "Pellham",
    "Ravensdale",
    "Sorrel",
    "Thistlebury",
    "Umberfield",
    "Wexcombe",
    "Yarrowmere",
    "Zephyrine",
    "Calloway-Finch",
    "Dovetail",
    "Embergate",
    "Foxglen",
    "Gildersleeve",
    "Hollowell",
    "Ironbridge",
    "Juniperra",
    "Larkspur",
    "Mistral",
    "Nightingale-Roe",
    "Oriel",
]
SKIN = [
    "acne",
    "acne_scarring",
    "hyperpigmentation",
    "melasma",
    "rosacea",
    "fine_lines",
    "wrinkles",
    "skin_laxity",
    "enlarged_pores",
    "dryness",
    "sun_damage",
    "uneven_texture",
    "dark_circles",
    "unwanted_hair",
    "cellulite",
    "volume_loss",
]
CONTRA = [
    "pregnancy",
    "breastfeeding",
    "isotretinoin_recent",
    "anticoagulants",
    "active_infection",
    "keloid_history",
    "autoimmune_disease",
    "cold_sore_history",
    "photosensitizing_medication",
    "neuromuscular_disorder",
    "bleeding_disorder",
    "pacemaker",
    "metal_implants",
    "recent_sunburn",
]
TREATMENTS = [
    ("botulinum_toxin", "Botox Cosmetic", "units", ["glabella", "forehead", "crows_feet"]),
    ("dermal_filler", "Juvederm Ultra XC", "syringe", ["lips"]),
    ("chemical_peel", "VI Peel", None, ["face"]),
    ("microneedling", "SkinPen", None, ["face", "neck"]),
    ("laser_hair_removal", "GentleMax Pro", None, ["axillae"]),
    ("ipl_photofacial", "BBL HERO", None, ["face", "decolletage"]),
    ("hydrafacial", "HydraFacial MD", None, ["face"]),
    ("prp", "PRP kit", "mL", ["under_eye"]),
]
ALLERGIES = [
    "penicillin|hives|moderate|medication",
    "latex|rash|mild|environment",
    "lidocaine|swelling|severe|medication",
    "shellfish|anaphylaxis|severe|food",
    "hyaluronidase||mild|medication",
    "adhesive tape|redness|mild|environment",
]
MEDS = [
    "tretinoin 0.05% cream|medication|nightly",
    "fish oil|supplement|1000 mg daily",
    "levothyroxine|medication|50 mcg daily",
    "vitamin E|supplement|",
    "warfarin|medication|5 mg daily",
    "biotin|supplement|5000 mcg daily",
]
CONDITIONS = ["hypothyroidism", "migraine", "seasonal allergies", "eczema", "asthma"]
PRIOR = [
    "Botox|2025-06|Bayou Glow Med Spa",
    "chemical peel|2024|",
    "laser resurfacing|2023-09-14|",
    "dermal filler|2025-02|Lafayette Aesthetics",
]
LANGS = ["en", "en", "en", "es", "vi", "fr", "zh"]
RELS = ["spouse", "partner", "sibling", "friend", "mother", "father", "child"]


def _pdf(text: str) -> bytes:
    """A minimal, valid one-page PDF (synthetic signed form)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def _signature_png(path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    img = Image.new("RGB", (300, 80), "white")
    draw = ImageDraw.Draw(img)
    points = [(10 + i * 14, 40 + rnd.randint(-20, 20)) for i in range(20)]
    draw.line(points, fill="navy", width=3)
    img.save(path, "PNG")


def _phone(n: int) -> str:
    return f"(337) 555-{100 + n % 100:04d}"


def valid_row(n: int, rnd: random.Random) -> dict[str, str]:
    cid = f"C{n:04d}"
    given, family = GIVEN[(n - 1) % len(GIVEN)], FAMILY[(n - 1) % len(FAMILY)]
    year = 1958 + (n * 7) % 45
    row: dict[str, str] = {
        "client_id": cid,
        "given_name": given,
        "family_name": family,
        "birth_date": f"{year}-{1 + n % 12:02d}-{1 + (n * 3) % 28:02d}",
        "sex": ["female", "female", "male", "other", "F"][n % 5],
        "gender_identity": "non-binary" if n % 5 == 3 else "",
        "email": f"{given.lower()}.{family.lower()}@example.com".replace("é", "e").replace(
            "ö", "o"
        ),
        "phone_mobile": _phone(n),
        "phone_home": _phone(n + 50) if n % 3 == 0 else "",
        "phone_work": "+1 225 555 0142" if n % 7 == 0 else "",
        "address_line1": f"{100 + n} Example Oak Ln",
        "address_line2": "Apt 2B" if n % 4 == 0 else "",
        "city": "Youngsville" if n % 2 else "Lafayette",
        "state": "LA",
        "postal_code": "70592" if n % 2 else "70508",
        "country": "US",
        "preferred_language": LANGS[n % len(LANGS)],
        "emergency_name": f"{GIVEN[(n + 5) % len(GIVEN)]} {family}",
        "emergency_relationship": RELS[n % len(RELS)],
        "emergency_phone": _phone(n + 20),
        "emergency_email": "" if n % 2 else f"contact{n}@example.org",
        "physician_name": f"Dr. {GIVEN[(n + 9) % len(GIVEN)]} {FAMILY[(n + 3) % len(FAMILY)]}"
        if n % 3 != 1
        else "",
        "physician_organization": "Acadiana Family Medicine (synthetic)" if n % 3 == 0 else "",
        "physician_phone": _phone(n + 40) if n % 3 == 0 else "",
        "physician_email": f"clinic{n}@example.org" if n % 3 == 0 else "",
        "physician_npi": "1234567893" if n % 6 == 0 else "",
        "intake_date": f"2026-01-{1 + n % 27:02d}",
        "conditions": "; ".join(rnd.sample(CONDITIONS, n % 3)),
        "medications": "; ".join(rnd.sample(MEDS, n % 4)),
        "allergies": "; ".join(rnd.sample(ALLERGIES, n % 3)),
        "prior_treatments": "; ".join(rnd.sample(PRIOR, n % 3)),
        "skin_type": ["I", "II", "III", "IV", "V", "VI"][n % 6],
        "skin_concerns": "; ".join(rnd.sample(SKIN, 1 + n % 3)),
        "contraindications": "; ".join(rnd.sample(CONTRA, n % 3)) if n % 4 == 0 else "",
        "pregnancy": ["not_pregnant", "pregnant", "unknown", ""][n % 4] if n % 5 != 2 else "",
        "breastfeeding": ["no", "yes", "", "unknown"][n % 4],
        "smoking": ["never", "former", "current", "unknown"][n % 4],
    }
    treatments = []
    for t in range(1 + n % 2):
        code, product, unit, sites = TREATMENTS[(n + t) % len(TREATMENTS)]
        item = {
            "id": f"{cid}-T{t + 1}",
            "date": f"2026-{2 + (n + t) % 9:02d}-{5 + n % 20:02d}T{9 + t:02d}:30:00",
            "treatment": code,
            "product": product,
            "lot": f"LOT{1000 + n * 10 + t}",
            "body_sites": sites[: 1 + t],
            "practitioner": ["Alex Rivera, RN", "Dr. Sam Okafor", "Jules Moreau, LE"][n % 3],
        }
        if unit:
            item["amount"] = {"units": 20, "syringe": 1, "mL": 3}[unit]
            item["unit"] = unit
        if n % 3 == 0:
            item["practitioner_npi"] = "1234567893"
            item["notes"] = "Tolerated well; aftercare sheet given."
        treatments.append(item)
    row["treatments"] = json.dumps(treatments, ensure_ascii=False)
    notes = (
        [
            {
                "date": f"2026-01-{1 + n % 27:02d}",
                "author": "Dr. Sam Okafor",
                "text": "Consultation: goals discussed; realistic outcomes explained; "
                "plan agreed. Follow-up in 2 weeks.",
            }
        ]
        if n % 2 == 0
        else []
    )
    row["consultation_notes"] = json.dumps(notes) if notes else ""
    for i, kind in enumerate(KINDS):
        # Rotate statuses so every kind is seen given, declined, withdrawn and never asked.
        state = (n + i) % 5
        prefix = f"consent_{kind}"
        if kind == "treatment":
            state = 0
        if kind == "photos_clinical" and n <= 12:
            # Clients with photos consented, but for one decline and one early withdrawal.
            state = {5: 2, 6: 3}.get(n, 0)
        if state == 4:
            continue
        status = {0: "given", 1: "given", 2: "declined", 3: "withdrawn"}[state]
        row[prefix] = status
        row[f"{prefix}_date"] = f"2026-01-{1 + n % 27:02d}"
        row[f"{prefix}_signer"] = "client"
        row[f"{prefix}_version"] = "2026-01-01"
        if status == "withdrawn":
            row[f"{prefix}_withdrawn_on"] = "2026-08-01" if n == 6 else "2026-11-02"
        if kind == "treatment" and n % 5 == 0:
            row[f"{prefix}_form"] = f"forms/{cid}-treatment.pdf"
        if kind == "photos_clinical" and status == "given" and n % 4 == 1:
            row[f"{prefix}_form"] = f"forms/{cid}-signature.png"
    return row


def minor_row(n: int, rnd: random.Random) -> dict[str, str]:
    row = valid_row(n, rnd)
    row.update(
        birth_date="2011-08-15",
        guardian_name=f"{GIVEN[(n + 2) % len(GIVEN)]} {row['family_name']}",
        guardian_relationship="mother",
        guardian_phone=_phone(n + 60),
        guardian_email=f"guardian{n}@example.org",
        pregnancy="",
        breastfeeding="",
        contraindications="",
    )
    for kind in KINDS:
        if f"consent_{kind}" in row:
            row[f"consent_{kind}_signer"] = "guardian"
    return row


INVALID = [
    # (description, changes) — each makes exactly one thing wrong
    ("future birth date", {"birth_date": "2031-04-01"}),
    ("minor without guardian", {"birth_date": "2012-02-02"}),
    ("malformed email", {"email": "not-an-email@"}),
    ("malformed phone", {"phone_mobile": "555-12"}),
    ("unknown skin concern code", {"skin_concerns": "glowing_aura"}),
    ("card number in free text", {"conditions": "paid with 4111 1111 1111 1111"}),
    ("empty required field", {"given_name": ""}),
    ("bad date", {"intake_date": "2026-02-30"}),
    (
        "withdrawn consent without a date",
        {
            "consent_photos_social": "withdrawn",
            "consent_photos_social_date": "2026-03-01",
            "consent_photos_social_version": "2026-01-01",
            "consent_photos_social_withdrawn_on": "",
        },
    ),
    (
        "unknown consent status",
        {
            "consent_research": "maybe",
            "consent_research_date": "2026-03-01",
            "consent_research_version": "2026-01-01",
        },
    ),
    ("bad treatment JSON", {"treatments": '[{"id": "X", '}),
    (
        "unknown body site in a treatment",
        {
            "treatments": json.dumps(
                [
                    {
                        "id": "T9",
                        "date": "2026-03-03",
                        "treatment": "chemical_peel",
                        "body_sites": ["elbow_crease"],
                    }
                ]
            )
        },
    ),
]


def main() -> None:
    rnd = random.Random(20261125)
    (OUT / "forms").mkdir(parents=True, exist_ok=True)
    rows = [valid_row(n, rnd) for n in range(1, 31)]
    rows[6] = minor_row(7, rnd)  # C0007 is a minor, with a guardian who signed
    for n, (_what, changes) in enumerate(INVALID, start=31):
        row = valid_row(n, rnd)
        row.update(changes)
        row["client_id"] = f"C{n:04d}"
        rows.append(row)
    duplicate = dict(rows[2])  # C0003 again: a duplicated client
    rows.append(duplicate)
    for row in rows:
        for kind in KINDS:
            form = row.get(f"consent_{kind}_form")
            if form and form.endswith(".pdf"):
                (OUT / form).write_bytes(_pdf(f"Synthetic signed {kind} form {row['client_id']}"))
            elif form:
                _signature_png(OUT / form, zlib.crc32(form.encode()))
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    for name in ("guardian_name", "guardian_relationship", "guardian_phone", "guardian_email"):
        if name not in columns:
            columns.append(name)
    with (OUT / "clients.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    print(f"wrote {len(rows)} rows to {OUT / 'clients.csv'}")


if __name__ == "__main__":
    main()
