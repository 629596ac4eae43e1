"""The EHR's smart_style_url: fetched at launch from the EHR's origin only, values checked,
served as a same-origin stylesheet (the CSP keeps style-src 'self')."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from smart_app.ehr_style import contrast, fetch_style, parse_style, stylesheet
from smart_app.sandbox.authorize import SMART_STYLE
from tests.app.conftest import launch

# The sandbox EHR's style document, with a font list that has quotes.
EHR_STYLE = {**SMART_STYLE, "font_family_body": "Georgia, 'Times New Roman', serif"}


def test_a_reference_style_document_maps_to_css_variables():
    style = parse_style(EHR_STYLE)
    assert style == {
        "--bg": "#f6f4f1",
        "--text": "#1f1f1f",
        "--accent": "#6b4c9a",
        "--warn": "#b3261e",
        "--ok": "#2e7d32",
        "--font-body": "Georgia, 'Times New Roman', serif",
        "--font-heading": "system-ui, sans-serif",
        "--font-size": "14px",
        "--radius": "6px",
        "--space": "16px",
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("color_highlight", "red;} body{display:none"),
        ("color_highlight", "url(https://tracker.example/x.png)"),
        ("color_highlight", "expression(alert(1))"),
        ("color_highlight", "#12345"),
        ("dim_font_size", "14px; background: url(x)"),
        ("dim_font_size", "9999px"),
        ("font_family_body", "Arial; } * { display: none"),
        ("font_family_body", "Arial</style><script>"),
        ("font_family_body", "'unclosed"),
        ("font_family_body", "x" * 200),
        ("color_text", 12),
    ],
)
def test_values_that_are_not_plainly_a_color_length_or_font_list_are_dropped(key, value):
    style = parse_style({key: value, "color_success": "#2e7d32"})
    assert style == {"--ok": "#2e7d32"}


def test_unreadable_text_on_background_keeps_the_apps_own_pair():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777", "#888") < 1.5
    style = parse_style({"color_text": "#777777", "color_background": "#888888"})
    assert "--text" not in style and "--bg" not in style
    # Only one of the pair given: checked against the app's default for the other.
    assert parse_style({"color_background": "#202020"}) == {}
    assert parse_style({"color_background": "#fafafa"}) == {"--bg": "#fafafa"}


def test_not_a_style_document():
    assert parse_style(["#fff"]) == {}
    assert parse_style(None) == {}


def test_stylesheet_declares_only_known_properties():
    css = stylesheet({"--bg": "#ffffff", "--evil": "x"})
    assert css == ":root {\n  --bg: #ffffff;\n}\n"


def test_fetched_only_from_the_ehrs_origin(httpserver):
    httpserver.expect_request("/style.json").respond_with_json(EHR_STYLE)
    iss = httpserver.url_for("/fhir")
    assert fetch_style(httpserver.url_for("/style.json"), iss, 5)["--accent"] == "#6b4c9a"
    other_origin = httpserver.url_for("/style.json").replace("localhost", "127.0.0.1")
    if other_origin == httpserver.url_for("/style.json"):
        other_origin = other_origin.replace("127.0.0.1", "localhost")
    before = len(httpserver.log)
    assert fetch_style(other_origin, iss, 5) == {}
    assert len(httpserver.log) == before  # not even a request
    assert fetch_style("file:///etc/passwd", iss, 5) == {}
    assert fetch_style(None, iss, 5) == {}


@pytest.mark.parametrize(
    "answer",
    [
        Response("not json", status=200, content_type="application/json"),
        Response(json.dumps(EHR_STYLE), status=404, content_type="application/json"),
        Response("", status=302, headers={"Location": "https://elsewhere.example/s.json"}),
        Response("[" + " " * 20000 + "]", status=200, content_type="application/json"),
    ],
    ids=["not-json", "404", "redirect", "too-large"],
)
def test_a_broken_style_is_ignored(httpserver, answer, caplog):
    httpserver.expect_request("/style.json").respond_with_response(answer)
    iss = httpserver.url_for("/fhir")
    assert fetch_style(httpserver.url_for("/style.json"), iss, 5) == {}
    assert "smart_style_url not applied" in caplog.text


def test_a_launch_applies_the_ehrs_style(client, fake_ehr):
    fake_ehr.server.expect_request("/style.json").respond_with_json(EHR_STYLE)
    assert launch(client, fake_ehr).status_code == 303
    page = client.get("/")
    assert page.status_code == 200
    assert b'href="/ehr-style.css"' in page.data
    css = client.get("/ehr-style.css")
    assert css.mimetype == "text/css"
    assert "--accent: #6b4c9a;" in css.get_data(as_text=True)
    assert "style-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_launch_without_a_usable_style_keeps_the_apps_own(client, fake_ehr):
    # No handler for /style.json: the fake answers 500.
    assert launch(client, fake_ehr).status_code == 303
    page = client.get("/")
    assert page.status_code == 200
    assert b"ehr-style.css" not in page.data
    assert client.get("/ehr-style.css").get_data(as_text=True) == ":root {\n\n}\n"
