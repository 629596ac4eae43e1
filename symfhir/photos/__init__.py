"""Photos and signed forms: sniff, size-check, strip metadata, and read photo manifests.

``files`` knows the types, limits and records without Pillow; ``clean`` re-encodes
images with Pillow; ``manifest`` reads photo manifests; ``thumbnail`` makes previews.
"""
