"""Fault injection: a pytest-httpserver FHIR stand-in on loopback, and a raw socket server for
what werkzeug will not do (reset a connection after reading the request).

Timeouts and backoffs are tiny so the whole folder runs in seconds.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from symfhir.fhir import FhirClient, ServerConfig

READ_TIMEOUT = 0.3
RETRIES = 3


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """pytest-httpserver's server, but threaded: a handler sleeping past the client's timeout
    must not hold up the retry that follows."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def config(httpserver: HTTPServer) -> ServerConfig:
    return ServerConfig(
        base_url=httpserver.url_for("/fhir"),
        connect_timeout=1.0,
        read_timeout=READ_TIMEOUT,
        retries=RETRIES,
        backoff_factor=0.001,
        backoff_max=0.01,
        max_retry_after=5.0,
        max_response_bytes=1024 * 1024,
    )


@pytest.fixture
def client(config: ServerConfig) -> Iterator[FhirClient]:
    with FhirClient(config) as fhir:
        yield fhir


class Script:
    """A handler answering from a list (the last answer repeats) and counting what it saw.

    ``hold`` makes an answer wait (a slow server); ``release()`` at teardown frees any that
    still wait, so no thread outlives its test.
    """

    def __init__(self, *answers: Response | Callable[[Request], Response]) -> None:
        self.answers = list(answers)
        self.requests: list[Request] = []
        self.bodies: list[bytes] = []
        self._release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            index = len(self.requests)
            self.requests.append(request)
            self.bodies.append(request.get_data())
        answer = self.answers[min(index, len(self.answers) - 1)]
        return answer(request) if callable(answer) and not isinstance(answer, Response) else answer

    def slow(self, seconds: float, answer: Response) -> Callable[[Request], Response]:
        def handler(_request: Request) -> Response:
            self._release.wait(seconds)
            return answer

        return handler

    def release(self) -> None:
        self._release.set()

    @property
    def count(self) -> int:
        return len(self.requests)


@pytest.fixture
def script() -> Iterator[Callable[..., Script]]:
    made: list[Script] = []

    def make(*answers: Response | Callable[[Request], Response]) -> Script:
        made.append(Script(*answers))
        return made[-1]

    yield make
    for item in made:
        item.release()


Action = str | bytes | Callable[[socket.socket], None]


class RawServer:
    """A loopback HTTP server that answers connection n from ``script[n]`` (the last repeats):
    "reset" reads the whole request, then resets the connection (RST, no answer); bytes are
    sent as the answer; a callable writes the answer itself. The connection closes after.
    ``requests`` holds each request's body."""

    def __init__(self, script: list[Action]) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                body = _read_request(conn)
                if body is None:
                    continue
                action = self.script[min(len(self.requests), len(self.script) - 1)]
                self.requests.append(body)
                if action == "reset":
                    # SO_LINGER 0: close() sends RST instead of FIN.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    continue
                try:
                    if callable(action):
                        action(conn)
                    else:
                        conn.sendall(action)
                except OSError:
                    pass  # the client hung up first: that is what some tests want


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def http_answer(status: str, body: bytes, content_type: str = "application/fhir+json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


@pytest.fixture
def raw_server() -> Callable[[list[Action]], RawServer]:
    return RawServer
