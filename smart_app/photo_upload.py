"""The files of a photo upload: each cleaned on its own (the original bytes go no further),
the same image sent twice kept once, and the line each file gets in the page's
#upload-result. The view in ``smart_app.photos`` checks the form, consent and scopes, and
writes the transaction."""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.datastructures import FileStorage

from symfhir.errors import PhotoError
from symfhir.photos.clean import clean_image
from symfhir.photos.files import CleanImage, ImageLimits

LIMITS = ImageLimits(max_bytes=15 * 1024 * 1024, max_pixels=40_000_000)


@dataclass(frozen=True)
class FileResult:
    """One file's line in #upload-result."""

    name: str
    ok: bool
    message: str


def name(storage: FileStorage) -> str:
    # Shown back to the practitioner only; never stored or logged (it may name the client).
    return (storage.filename or "photo").replace("\\", "/").rsplit("/", 1)[-1][:120]


def clean(storage: FileStorage) -> tuple[str, CleanImage | None, str]:
    """(file name, the cleaned image or None, why not); the original bytes go no further."""
    file_name = name(storage)
    raw = storage.stream.read(LIMITS.max_bytes + 1)
    try:
        return file_name, clean_image(raw, record=file_name, limits=LIMITS), ""
    except PhotoError as err:
        return file_name, None, err.reason


def unique(images: list[CleanImage]) -> list[CleanImage]:
    seen: set[str] = set()
    out = []
    for image in images:
        if image.sha1_b64 not in seen:
            seen.add(image.sha1_b64)
            out.append(image)
    return out
