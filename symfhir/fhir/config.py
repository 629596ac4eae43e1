"""Where the FHIR server is and how to talk to it: ``ServerConfig`` and ``load_config``.

Precedence for the base URL: the explicit ``server`` argument, then ``FHIR_BASE_URL``, then the
``[server]`` table of the config file, then ``http://localhost:8080/fhir``. The config file is
TOML: the ``config_path`` argument, else ``SYMFHIR_CONFIG``, else ``./symfhir.toml`` if present.
Secrets may come from the environment instead of the file (``FHIR_TOKEN``,
``FHIR_CLIENT_SECRET``); the environment wins. Other tables of the file belong to other parts of
symfhir and are not read here.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from symfhir.errors import ConfigError

DEFAULT_BASE_URL = "http://localhost:8080/fhir"
DEFAULT_CONFIG_FILE = "symfhir.toml"
AUTH_KINDS = ("none", "bearer", "smart", "backend-services")
ALGORITHMS = ("RS384", "ES384")
MiB = 1024 * 1024
# ServerConfig's defaults, and the fallbacks when a plain requests.Session is passed to send().
DEFAULT_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds
DEFAULT_MAX_BYTES = 64 * MiB


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one FHIR server connection; validated on construction (raises ConfigError)."""

    base_url: str = DEFAULT_BASE_URL
    auth: str = "none"
    token: str | None = field(default=None, repr=False)
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    private_key_path: Path | None = None
    key_id: str | None = None
    algorithm: str = "RS384"
    scope: str | None = None
    connect_timeout: float = DEFAULT_TIMEOUT[0]
    read_timeout: float = DEFAULT_TIMEOUT[1]
    retries: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    # A Retry-After longer than this is not waited for: the request fails at once instead.
    max_retry_after: float = 120.0
    max_response_bytes: int = DEFAULT_MAX_BYTES
    pool_size: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _base_url("base_url", self.base_url))
        if self.auth not in AUTH_KINDS:
            raise ConfigError(f"server.auth: must be one of {', '.join(AUTH_KINDS)}")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"server.algorithm: must be one of {', '.join(ALGORITHMS)}")
        if self.token_url is not None:
            _base_url("token_url", self.token_url)
        for name in ("connect_timeout", "read_timeout", "backoff_max", "max_retry_after"):
            _positive(name, getattr(self, name), allow_zero=False)
        _positive("backoff_factor", self.backoff_factor, allow_zero=True)
        for name in ("retries", "max_response_bytes", "pool_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"server.{name}: must be a whole number")
            if value < (0 if name == "retries" else 1):
                raise ConfigError(f"server.{name}: out of range")
        if isinstance(self.private_key_path, str):
            object.__setattr__(self, "private_key_path", Path(self.private_key_path))
        self._check_auth()

    def _check_auth(self) -> None:
        needed: tuple[str, ...] = ()
        if self.auth == "bearer":
            needed = ("token",)
        elif self.auth == "backend-services":
            needed = ("token_url", "client_id", "private_key_path", "key_id", "scope")
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ConfigError(f"server.{missing[0]}: required when auth is {self.auth!r}")

    @property
    def timeout(self) -> tuple[float, float]:
        """The (connect, read) timeout pair requests expects."""
        return (self.connect_timeout, self.read_timeout)


_STRINGS = frozenset(
    {"base_url", "auth", "token", "token_url", "client_id", "client_secret", "key_id"}
    | {"algorithm", "scope", "private_key_path"}
)
_NUMBERS = frozenset(
    {"connect_timeout", "read_timeout", "backoff_factor", "backoff_max", "max_retry_after"}
)
_INTEGERS = frozenset({"retries", "max_response_bytes", "pool_size"})
_KEYS = frozenset(f.name for f in fields(ServerConfig))
assert _KEYS == _STRINGS | _NUMBERS | _INTEGERS  # every field has a type rule


def load_config(
    server: str | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> ServerConfig:
    """The server settings from the argument, the environment and the config file.

    Raises ConfigError naming the file and key when the file is unreadable, has an unknown key
    or a bad value, or when the base URL is not an http(s) URL.
    """
    values: dict[str, Any] = {}
    path = _config_file(config_path, environ)
    if path is not None:
        values.update(_read_file(path))
    for env, key in (("FHIR_TOKEN", "token"), ("FHIR_CLIENT_SECRET", "client_secret")):
        if environ.get(env):
            values[key] = environ[env]
    if server is not None:
        values["base_url"] = server
    elif environ.get("FHIR_BASE_URL"):
        values["base_url"] = environ["FHIR_BASE_URL"]
    if "private_key_path" in values and path is not None:
        # A relative key path in the file is relative to the file, not to the working folder.
        values["private_key_path"] = path.parent / Path(values["private_key_path"]).expanduser()
    try:
        return ServerConfig(**values)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None


def _config_file(config_path: Path | None, environ: Mapping[str, str]) -> Path | None:
    if config_path is not None:
        return Path(config_path)
    if environ.get("SYMFHIR_CONFIG"):
        return Path(environ["SYMFHIR_CONFIG"])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    table = document.get("server", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: server: must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise ConfigError(f"{path}: server.{key}: unknown setting")
        values[key] = _typed(path, key, value)
    return values


def _typed(path: Path, key: str, value: object) -> object:
    if key in _STRINGS:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: server.{key}: must be a string")
        return value
    if key in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: server.{key}: must be a whole number")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: server.{key}: must be a number")
    return float(value)


def _positive(name: str, value: object, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"server.{name}: must be a number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"server.{name}: must be greater than zero")


def _base_url(name: str, url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"server.{name}: must be an http(s) URL")
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"server.{name}: must be an http(s) URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"server.{name}: must not carry a query or fragment")
    return url
