from pathlib import Path

import pytest

from symfhir.errors import ConfigError
from symfhir.fhir.config import DEFAULT_BASE_URL, ServerConfig, load_config

pytestmark = pytest.mark.unit


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_config_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_defaults():
    config = load_config(environ={})
    assert config.base_url == DEFAULT_BASE_URL
    assert config.auth == "none"
    assert config.timeout == (5.0, 60.0)
    assert (config.retries, config.backoff_factor, config.backoff_max) == (5, 0.5, 30.0)
    assert config.max_response_bytes == 64 * 1024 * 1024
    assert config.pool_size == 10


def test_precedence_argument_then_env_then_file_then_default(tmp_path):
    file = write(tmp_path / "s.toml", '[server]\nbase_url = "http://file.example/fhir"\n')
    env = {"FHIR_BASE_URL": "http://env.example/fhir"}
    assert load_config("http://arg.example/fhir", file, env).base_url == "http://arg.example/fhir"
    assert load_config(None, file, env).base_url == "http://env.example/fhir"
    assert load_config(None, file, {}).base_url == "http://file.example/fhir"
    assert load_config(None, None, {}).base_url == DEFAULT_BASE_URL


def test_config_file_from_env_or_working_folder(tmp_path):
    write(tmp_path / "symfhir.toml", '[server]\nbase_url = "http://cwd.example/fhir"\n')
    other = write(tmp_path / "other.toml", '[server]\nbase_url = "http://env.example/fhir"\n')
    assert load_config(environ={}).base_url == "http://cwd.example/fhir"
    assert load_config(environ={"SYMFHIR_CONFIG": str(other)}).base_url == (
        "http://env.example/fhir"
    )


def test_file_settings_and_secret_from_env(tmp_path):
    file = write(
        tmp_path / "s.toml",
        """
[server]
base_url = "https://ehr.example/fhir/r4/"
auth = "bearer"
token = "from-file"
read_timeout = 90
retries = 2
backoff_factor = 0
max_response_bytes = 1048576

[import]
batch_size = 50  # another part of symfhir reads this table
""",
    )
    config = load_config(config_path=file, environ={"FHIR_TOKEN": "from-env"})
    assert config.base_url == "https://ehr.example/fhir/r4"
    assert config.token == "from-env"
    assert config.read_timeout == 90.0
    assert config.retries == 2
    assert config.backoff_factor == 0
    assert config.max_response_bytes == 1048576
    assert "from-env" not in repr(config)


def test_relative_key_path_is_relative_to_the_file(tmp_path):
    (tmp_path / "conf").mkdir()
    file = write(
        tmp_path / "conf" / "s.toml",
        """
[server]
auth = "backend-services"
token_url = "https://auth.example/token"
client_id = "symfhir"
private_key_path = "keys/symfhir.pem"
key_id = "k1"
algorithm = "ES384"
scope = "system/*.rs"
""",
    )
    config = load_config(config_path=file, environ={})
    assert config.private_key_path == tmp_path / "conf" / "keys" / "symfhir.pem"
    assert config.algorithm == "ES384"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('colour = "blue"', "server.colour: unknown setting"),
        ('retries = "five"', "server.retries: must be a whole number"),
        ("retries = 2.5", "server.retries: must be a whole number"),
        ("retries = -1", "server.retries: out of range"),
        ("read_timeout = true", "server.read_timeout: must be a number"),
        ("read_timeout = 0", "server.read_timeout: must be greater than zero"),
        ("pool_size = 0", "server.pool_size: out of range"),
        ('auth = "magic"', "server.auth: must be one of none, bearer, smart, backend-services"),
        ('algorithm = "RS256"', "server.algorithm: must be one of RS384, ES384"),
        ("base_url = 5", "server.base_url: must be a string"),
        ('base_url = "ftp://ehr.example/fhir"', "server.base_url: must be an http(s) URL"),
        ('base_url = "localhost:8080/fhir"', "server.base_url: must be an http(s) URL"),
        ('base_url = "http://x/fhir?a=1"', "server.base_url: must not carry a query"),
        ('auth = "bearer"', "server.token: required when auth is 'bearer'"),
        ('auth = "backend-services"', "server.token_url: required when auth is"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, body, message):
    file = write(tmp_path / "s.toml", f"[server]\n{body}\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        load_config(config_path=file, environ={})
    assert str(e.value).startswith(str(file))


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(config_path=tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(environ={"SYMFHIR_CONFIG": str(tmp_path / "missing.toml")})
    broken = write(tmp_path / "broken.toml", "[server\nbase_url = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(config_path=broken, environ={})
    table = write(tmp_path / "table.toml", 'server = "x"\n')
    with pytest.raises(ConfigError, match="server: must be a table"):
        load_config(config_path=table, environ={})


@pytest.mark.parametrize("url", ["file:///etc/passwd", "javascript:alert(1)", "", "http://"])
def test_non_http_urls_are_refused(url):
    with pytest.raises(ConfigError, match="must be an http"):
        load_config(url, environ={})


def test_env_url_is_checked_too():
    with pytest.raises(ConfigError, match=r"server\.base_url"):
        load_config(environ={"FHIR_BASE_URL": "gopher://x"})


def test_direct_construction_is_validated():
    assert ServerConfig(base_url="http://x/fhir/").base_url == "http://x/fhir"
    with pytest.raises(ConfigError, match=r"server\.backoff_factor"):
        ServerConfig(backoff_factor=-1)
