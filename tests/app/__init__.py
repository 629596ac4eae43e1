"""Tests of the SMART app (smart_app/), against a fake EHR made with pytest-httpserver."""
