"""FHIR REST paths below the proxy's base, checked segment by segment before anything is forwarded.

A path is only ever made of a resource type, an id, `_history` and a version, `_search`, or
an operation (`$everything`): none of them needs percent-encoding, so any `%` other than an
encoded `$` is refused, and so are `.` and `..` segments and empty ones. What the proxy then
forwards is these segments joined again, never the path the client sent.
"""

from __future__ import annotations

import re

_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
#: FHIR ids (http://hl7.org/fhir/R4/datatypes.html#id); dot-only ones are path steps.
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_OPERATION = re.compile(r"\$[a-z][A-Za-z0-9-]{0,63}")
_KEYWORDS = frozenset({"_history", "_search"})
#: The one escape a client may send: `$` of an operation (some clients encode it).
_ENCODED_DOLLAR = re.compile(r"%24", re.IGNORECASE)


def _segment_ok(segment: str) -> bool:
    if not segment or set(segment) == {"."}:
        return False
    return bool(
        segment in _KEYWORDS
        or _TYPE.fullmatch(segment)
        or _ID.fullmatch(segment)
        or _OPERATION.fullmatch(segment)
    )


def split_path(path: str) -> list[str] | None:
    """The segments of a decoded path below the base (one trailing `/` allowed); None when
    a segment is empty, `.`/`..`, or not a type, id, keyword or operation."""
    segments = path.split("/") if path else []
    if segments and segments[-1] == "":
        segments.pop()
    if not all(_segment_ok(s) for s in segments):
        return None
    return segments


def raw_path_ok(raw: str) -> bool:
    """Whether the path as sent (still percent-encoded) escapes nothing but `$`: an encoded
    `/`, `\\` or `.` would otherwise be decoded into a separator or a dot segment."""
    return "%" not in _ENCODED_DOLLAR.sub("", raw)


def request_segments(raw_uri: str | None, path: str) -> list[str] | None:
    """The checked segments of a request to the proxy; None when it must be refused.

    `raw_uri` is the request target as received (the WSGI server's `RAW_URI`), `path` the
    decoded path below the proxy's base.
    """
    if raw_uri is not None and not raw_path_ok(raw_uri.split("?", 1)[0].split("#", 1)[0]):
        return None
    return split_path(path)
