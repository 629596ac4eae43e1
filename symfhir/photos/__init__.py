"""Photos and signed forms: sniff, size-check, strip metadata, and read photo manifests."""

from symfhir.photos.clean import (
    CleanDocument,
    CleanImage,
    ImageLimits,
    clean_image,
    clean_signed_form,
)

__all__ = [
    "CleanDocument",
    "CleanImage",
    "ImageLimits",
    "clean_image",
    "clean_signed_form",
]
