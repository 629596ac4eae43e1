"""Generate the synthetic photo sample: tests/data/sample/photos/* and photos.csv.

Deterministic (seeded). The images are gradients and shapes, never people; the
EXIF they carry (capture time, an invented camera, GPS near a made-up point)
is there so tests can prove it is stripped. Also writes deliberately bad files
and rows. Run from the repository root: `python scripts/make_sample_photos.py`.
"""

from __future__ import annotations

import csv
import io
import random
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import ExifTags, Image, ImageCms, ImageDraw, ImageOps
from PIL.PngImagePlugin import PngInfo

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "data" / "sample"
PHOTOS = SAMPLE / "photos"
ZONE = ZoneInfo("America/Chicago")
SIZE = (320, 240)
COLUMNS = ["client_id", "file", "taken_at", "body_site", "view", "phase", "treatment_id"]
# A made-up point; each photo is jittered around it.
GPS_ORIGIN = (30.1, -92.0)


@dataclass(frozen=True)
class Shot:
    client: str
    treatment: str  # "" when the photo is not tied to a treatment
    site: str
    view: str
    phase: str
    when: datetime
    ext: str = "jpg"
    orientation: int = 1
    time_style: str = "iso"  # iso (with offset) | local (no offset) | date

    @property
    def file(self) -> str:
        tid = self.treatment.split("-")[-1] if self.treatment else "N"
        return f"{self.client}-{tid}-{self.site}-{self.phase}-{self.when:%m%d}.{self.ext}"

    def taken_at(self) -> str:
        if self.time_style == "date":
            return self.when.date().isoformat()
        if self.time_style == "local":
            return self.when.strftime("%Y-%m-%d %H:%M")
        return self.when.isoformat()


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE)


SHOTS = [
    Shot("C0001", "C0001-T1", "lips", "close_up", "before", at(3, 6, 9, 20)),
    Shot("C0001", "C0001-T1", "lips", "close_up", "after", at(3, 6, 9, 58), orientation=6),
    Shot("C0001", "C0001-T2", "face", "frontal", "before", at(4, 6, 10, 20), "webp"),
    Shot("C0001", "C0001-T2", "face", "frontal", "after", at(4, 6, 11, 5), "webp", 8),
    Shot(
        "C0002", "C0002-T1", "face", "left_oblique", "before", at(4, 7, 9, 15), time_style="local"
    ),
    Shot("C0002", "C0002-T1", "face", "left_oblique", "progress", at(4, 21), time_style="date"),
    Shot("C0003", "C0003-T1", "face", "frontal", "before", at(5, 8, 9, 15), orientation=3),
    Shot("C0003", "C0003-T1", "face", "frontal", "after", at(5, 8, 10, 10)),
    Shot("C0003", "C0003-T2", "axillae", "close_up", "before", at(6, 8, 10, 20), "png"),
    Shot("C0004", "C0004-T1", "axillae", "close_up", "before", at(6, 9, 9, 20), "png"),
    Shot("C0004", "C0004-T1", "axillae", "close_up", "after", at(7, 9, 9, 40), "png"),
    Shot("C0005", "C0005-T1", "face", "right_oblique", "before", at(7, 10, 9, 20), "webp"),
    Shot("C0005", "C0005-T1", "face", "right_oblique", "after", at(7, 10, 10, 5), "webp", 6),
    Shot("C0006", "C0006-T1", "face", "frontal", "progress", at(8, 25, 14, 0), orientation=6),
    Shot("C0007", "C0007-T1", "under_eye", "close_up", "before", at(9, 12, 9, 25)),
    Shot("C0007", "C0007-T2", "glabella", "frontal", "before", at(10, 12, 10, 25)),
    Shot("C0008", "C0008-T1", "glabella", "frontal", "before", at(10, 13, 9, 20)),
    Shot("C0008", "C0008-T1", "glabella", "frontal", "after", at(10, 27, 11, 0)),
    Shot("C0008", "", "glabella", "frontal", "progress", at(11, 10, 15, 30), time_style="local"),
    Shot("C0009", "C0009-T1", "lips", "left_lateral", "before", at(2, 14, 9, 20)),
    Shot("C0010", "C0010-T1", "face", "frontal", "before", at(3, 15, 9, 20), "webp"),
    Shot("C0011", "C0011-T1", "face", "frontal", "before", at(4, 16, 9, 20)),
    Shot("C0012", "C0012-T1", "axillae", "close_up", "after", at(5, 17, 10, 0), "webp"),
    # A valid photo of a client the client export does not have: rejected at join time.
    Shot("C9999", "", "face", "frontal", "before", at(6, 1, 10, 0)),
]


def picture(rng: random.Random) -> Image.Image:
    """A soft two-colour gradient with a few translucent shapes."""
    top = tuple(rng.randrange(60, 230) for _ in range(3))
    bottom = tuple(rng.randrange(20, 200) for _ in range(3))
    ramp = Image.linear_gradient("L").resize(SIZE)
    image = ImageOps.colorize(ramp, top, bottom).convert("RGBA")  # type: ignore[arg-type]
    layer = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randrange(2, 5)):
        x, y = rng.randrange(0, 260), rng.randrange(0, 180)
        w, h = rng.randrange(30, 120), rng.randrange(30, 100)
        fill = (*(rng.randrange(0, 256) for _ in range(3)), 110)
        if rng.random() < 0.5:
            draw.ellipse((x, y, x + w, y + h), fill=fill)
        else:
            draw.rectangle((x, y, x + w, y + h), fill=fill)
    return Image.alpha_composite(image, layer).convert("RGB")


def exif_for(shot: Shot, rng: random.Random) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SynthCam"
    exif[ExifTags.Base.Model] = rng.choice(["SC-1 Clinic", "SC-2 Pro"])
    exif[ExifTags.Base.Software] = "symfhir sample generator"
    exif[ExifTags.Base.Orientation] = shot.orientation
    local = shot.when.replace(tzinfo=None)
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = f"{local:%Y:%m:%d %H:%M:%S}"
    lat = GPS_ORIGIN[0] + rng.uniform(-0.01, 0.01)
    lon = GPS_ORIGIN[1] + rng.uniform(-0.01, 0.01)
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
    gps[ExifTags.GPS.GPSLatitude] = _dms(lat)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
    gps[ExifTags.GPS.GPSLongitude] = _dms(lon)
    return exif


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 2)
    return float(degrees), float(minutes), seconds


def encode(shot: Shot, index: int, rng: random.Random) -> bytes:
    image = picture(rng)
    out = io.BytesIO()
    if shot.ext == "png":
        info = PngInfo()
        if index == 9:  # one PNG carries text chunks (plain, compressed and international)
            info.add_text("Author", "Synthetic Sample Studio")
            info.add_text("Comment", f"synthetic sample for {shot.client}", zip=True)
            info.add_itxt("Description", "gradient test card", lang="en")
        image.save(out, "PNG", pnginfo=info, optimize=True)
    elif shot.ext == "webp":
        image.save(out, "WEBP", quality=80, exif=exif_for(shot, rng).tobytes())
    else:
        extra: dict[str, object] = {}
        if index == 0:  # one JPEG also carries an ICC profile and a comment
            extra = {"icc_profile": fixed_srgb_profile(), "comment": b"synthetic sample"}
        image.save(out, "JPEG", quality=80, exif=exif_for(shot, rng).tobytes(), **extra)
    return out.getvalue()


def fixed_srgb_profile() -> bytes:
    """An sRGB ICC profile with a fixed creation date, so the output is reproducible."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
    icc[84:100] = bytes(16)  # profile ID: zero means "not computed", valid after the edit
    return bytes(icc)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header declares 10 gigapixels but whose file is a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def bad_files(rng: random.Random) -> dict[str, bytes]:
    good = io.BytesIO()
    picture(rng).save(good, "JPEG", quality=80)
    whole = good.getvalue()
    gif = io.BytesIO()
    Image.new("P", (32, 32), 3).save(gif, "GIF")
    return {
        "not-an-image.jpg": b"This is a text file with a .jpg name; it is not an image.\n",
        "bomb.png": bomb_png(),
        "truncated.jpg": whole[: len(whole) * 3 // 5],
        "animation.gif": gif.getvalue(),
    }


def manifest_rows(shots: list[Shot]) -> list[dict[str, str]]:
    rows = []
    for shot in shots:
        view = shot.view
        if shot.client == "C0009":
            view = "Left Lateral"  # keys are normalised: spaces and case do not matter
        row = {
            "client_id": shot.client,
            "file": f"photos/{shot.file}",
            "taken_at": shot.taken_at(),
            "body_site": shot.site,
            "view": view,
            "phase": shot.phase,
            "treatment_id": shot.treatment,
        }
        rows.append(row)
    by_client = {shot.client: shot for shot in shots}

    def bad(client: str, file: str, **changes: str) -> dict[str, str]:
        shot = by_client[client]
        row = {
            "client_id": client,
            "file": file,
            "taken_at": shot.taken_at(),
            "body_site": shot.site,
            "view": shot.view,
            "phase": "before",
            "treatment_id": "",
        }
        row.update(changes)
        return row

    rows += [
        bad("C0002", "photos/not-an-image.jpg"),
        bad("C0003", "photos/bomb.png"),
        bad("C0005", "photos/truncated.jpg"),
        bad("C0006", "photos/animation.gif"),
        bad("C0007", f"photos/{by_client['C0007'].file}", body_site="earlobe"),
        bad("C0008", f"photos/{by_client['C0008'].file}", taken_at="2027-01-15 10:00"),
        bad("C0009", "../clients.csv"),
    ]
    return rows


def main() -> None:
    rng = random.Random(20260301)
    PHOTOS.mkdir(parents=True, exist_ok=True)
    for old in PHOTOS.iterdir():
        if old.is_file():
            old.unlink()
    for index, shot in enumerate(SHOTS):
        (PHOTOS / shot.file).write_bytes(encode(shot, index, rng))
    for name, data in bad_files(rng).items():
        (PHOTOS / name).write_bytes(data)
    with (SAMPLE / "photos.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(manifest_rows(SHOTS))
    total = sum(p.stat().st_size for p in PHOTOS.iterdir())
    print(f"wrote {len(list(PHOTOS.iterdir()))} files ({total // 1024} KiB) and photos.csv")


if __name__ == "__main__":
    main()
