"""The HTTP server as deployed (a process on its own port): its bounds on clients, the answers it
writes itself, its headers."""

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import SERVICE, free_port, running

READ_TIMEOUT = 1.0
MAX_HEAD = 8192


@pytest.fixture(scope="module")
def port(database_url: str) -> Iterator[int]:
    env = {
        "DATABASE_URL": database_url,
        "HTTP_READ_TIMEOUT": str(READ_TIMEOUT),
        "HTTP_MAX_HEADER_BYTES": str(MAX_HEAD),
    }
    port = free_port()
    with running(SERVICE, env, port, quiet=True):
        yield port


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _healthy(connection: socket.socket) -> bool:
    """Ask /health on a kept-alive connection; True when it answers 200."""
    connection.sendall(HEALTH)
    answer = b""
    while not answer.endswith(b'{"status":"ok"}'):
        chunk = connection.recv(65536)
        if not chunk:
            return False
        answer += chunk
    return answer.startswith(b"HTTP/1.1 200")


def _answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _assert_problem(answer: bytes, status: int) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert b"content-type: application/problem+json" in head.lower()
    assert f'"status":{status}'.encode() in body


def test_no_server_header(port: int) -> None:
    response = httpx.get(f"http://127.0.0.1:{port}/health")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert "date" in response.headers


def test_a_trailing_slash_is_a_404_problem_never_a_redirect(port: int) -> None:
    for path in ("/users/alice/tasks/", "/health/", "/ready/"):
        response = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": "evil.example"})
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert "location" not in response.headers
        assert "evil.example" not in response.text


def test_a_request_that_is_not_http_is_a_400_problem(port: int) -> None:
    with _connect(port) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        _assert_problem(_answer(connection), 400)


def test_an_oversized_head_is_a_431_problem(port: int) -> None:
    with _connect(port) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4 * MAX_HEAD)
        _assert_problem(_answer(connection), 431)


def test_a_head_that_takes_too_long_is_a_408_problem(port: int) -> None:
    with _connect(port) as connection:
        started = time.monotonic()
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = _answer(connection)
        _assert_problem(answer, 408)
        assert time.monotonic() - started < READ_TIMEOUT + 5


def test_a_body_that_takes_too_long_is_a_408_problem(port: int) -> None:
    with _connect(port) as connection:
        connection.sendall(
            b"POST /users/alice/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"title": '
        )
        _assert_problem(_answer(connection), 408)


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    with _connect(port) as connection:
        started = time.monotonic()
        assert _answer(connection) == b""
        assert time.monotonic() - started < READ_TIMEOUT + 5


def test_keep_alive_outlasts_the_usual_balancer_idle_timeouts(port: int) -> None:
    """75 s by default: longer than a load balancer's idle timeout (60 s on AWS), so that the
    balancer, not the service, closes an idle connection. Checked here past uvicorn's own 5 s."""
    with _connect(port) as connection:
        assert _healthy(connection)
        time.sleep(6)
        assert _healthy(connection)


def test_keep_alive_timeout_is_configurable(database_url: str) -> None:
    port = free_port()
    env = {"DATABASE_URL": database_url, "HTTP_KEEPALIVE_TIMEOUT": "1"}
    with running(SERVICE, env, port, quiet=True), _connect(port) as connection:
        assert _healthy(connection)
        started = time.monotonic()
        assert connection.recv(65536) == b""  # closed by the server
        assert time.monotonic() - started < 1 + 5
