"""YAML parsing for the files of ``mappings/``: libyaml's C parser when PyYAML was built
with it (about 10x faster than the pure-Python one; every command pays it at start-up)."""

from __future__ import annotations

from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

YAMLError = yaml.YAMLError


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` semantics (no arbitrary objects). Raises YAMLError."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
