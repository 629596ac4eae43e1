"""The EHR's look inside symfhir: the launch's ``smart_style_url`` applied as CSS variables.

SMART App Launch lets the EHR send a style document (colors, fonts, sizes) so an embedded
app matches it. symfhir fetches it once at launch, only from the EHR's own origin, keeps
only values that are plainly a color, a length or a font list (nothing that could break out
of a CSS declaration), refuses text/background pairs below WCAG AA contrast, and serves the
result as a same-origin stylesheet — so the CSP keeps ``style-src 'self'`` and no inline CSS.
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#styling
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from flask import Blueprint, Response, session

log = logging.getLogger(__name__)

bp = Blueprint("ehr_style", __name__)

MAX_STYLE_BYTES = 16 * 1024
#: SMART style key → the CSS custom property of static/app.css it sets.
PROPERTIES = {
    "color_background": "--bg",
    "color_text": "--text",
    "color_highlight": "--accent",
    "color_error": "--warn",
    "color_success": "--ok",
    "font_family_body": "--font-body",
    "font_family_heading": "--font-heading",
    "dim_font_size": "--font-size",
    "dim_border_radius": "--radius",
    "dim_spacing_size": "--space",
}
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_LENGTH = re.compile(r"(?:0|\d{1,3}(?:\.\d{1,3})?(?:px|rem|em))")
_FONTS = re.compile(r"[A-Za-z0-9 ,'\"-]{1,120}")
MIN_CONTRAST = 4.5  # WCAG 2.x AA for body text


def parse_style(document: Any) -> dict[str, str]:
    """The CSS properties a style document sets: unknown keys and unsafe or malformed
    values are dropped; text and background are dropped together when their contrast is
    below WCAG AA (the app's own pair stays, readable)."""
    if not isinstance(document, dict):
        return {}
    style: dict[str, str] = {}
    for key, prop in PROPERTIES.items():
        value = document.get(key)
        if not isinstance(value, str):
            continue
        value = value.strip()
        if key.startswith("color_"):
            ok = _COLOR.fullmatch(value)
        elif key.startswith("dim_"):
            ok = _LENGTH.fullmatch(value)
        else:
            ok = _FONTS.fullmatch(value) and value.count('"') % 2 == 0 and value.count("'") % 2 == 0
        if ok:
            style[prop] = value
    text, background = style.get("--text", "#1a1a1a"), style.get("--bg", "#ffffff")
    if contrast(text, background) < MIN_CONTRAST:
        style.pop("--text", None)
        style.pop("--bg", None)
    return style


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two ``#rgb``/``#rrggbb`` colors (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(color: str) -> float:
    digits = color[1:]
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return a.scheme in ("http", "https") and (a.scheme, a.netloc) == (b.scheme, b.netloc)


def fetch_style(url: object, iss: str, timeout: float) -> dict[str, str]:
    """The parsed style at ``url`` when it is on the EHR's origin (``iss``); ``{}`` when
    absent, elsewhere, too large or broken — the app's own style is a fine fallback, so a
    failure is logged (no PHI: the URL is the EHR's) and never fails the launch."""
    if not isinstance(url, str) or not url:
        return {}
    if not same_origin(url, iss):
        log.warning("smart_style_url ignored: not on the EHR's origin")
        return {}
    try:
        headers = {"Accept": "application/json"}
        with requests.get(
            url, timeout=timeout, stream=True, allow_redirects=False, headers=headers
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = response.raw.read(MAX_STYLE_BYTES + 1, decode_content=True)
        if len(body) > MAX_STYLE_BYTES:
            raise ValueError(f"larger than {MAX_STYLE_BYTES} bytes")
        return parse_style(orjson.loads(body))
    except (requests.RequestException, ValueError) as exc:
        log.warning("smart_style_url not applied: %s", type(exc).__name__)
        return {}


def stylesheet(style: dict[str, str]) -> str:
    """``:root`` declarations for the properties of ``style`` (values already checked)."""
    lines = [f"  {prop}: {value};" for prop, value in style.items() if prop in PROPERTIES.values()]
    return ":root {\n" + "\n".join(lines) + "\n}\n"


@bp.get("/ehr-style.css")
def css() -> Response:
    context = session.get("ctx") or {}
    style = context.get("style") if isinstance(context, dict) else None
    return Response(stylesheet(style or {}), mimetype="text/css")
