"""The HTTP server: uvicorn with bounds on what a client may hold, and a stop that loses nothing.

- A request's head may take at most HTTP_MAX_HEADER_BYTES, and a request at most
  HTTP_READ_TIMEOUT seconds from its first byte (from connecting, for the first) to its last.
- Answers written before the app sees a request (400, 408, 431) are problem documents too.
- On SIGTERM, the connections already accepted by the kernel are answered: those still waiting in
  the listen backlog are taken and served, and a client that has just connected, or is idle between
  requests, gets a last moment to be heard. In-flight requests have SHUTDOWN_GRACE seconds; then
  they are cancelled (each answers 503), and the process exits 0.
"""

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors import multiprocess

from app.config import Settings, get_settings
from app.observability.logs import log_config
from app.observability.metrics_port import serve_metrics_port
from app.problems import PROBLEM_JSON, problem_body

logger = logging.getLogger("app.http.server")

LAST_CALL = 1.0  # seconds an idle connection is still heard once the server stops
LINGER = 2.0  # seconds a refused client's remaining bytes are read and dropped before closing


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on each request's head size and reading time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._max_head = settings.http_max_header_bytes
        self._read_timeout = settings.http_read_timeout
        self._reading_head = True
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._stopping = False
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self._read_timeout, self._read_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self._max_head and not self._refused:
            self._refuse(431, f"The request's head exceeds {self._max_head} bytes.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._deadline = self.loop.call_later(self._read_timeout, self._read_timed_out)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()
        if self._stopping and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._reading_head = True
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "The request is not valid HTTP/1.1.")

    def shutdown(self) -> None:
        self._stopping = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        elif self._idle():
            self.loop.call_later(LAST_CALL, self._close_if_idle)
        # Otherwise a request's head is arriving: it is answered, with Connection: close.

    def _idle(self) -> bool:
        return self._reading_head and self._head_bytes == 0 and not self.pipeline

    def _close_if_idle(self) -> None:
        if self._idle() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._idle() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()  # connected and never asked anything
        elif self.cycle is None or self._reading_head or not self.cycle.response_started:
            if self.cycle is not None and not self._reading_head:
                # The app is waiting for the rest of the body: it sees the client leave.
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self._refuse(408, f"The request was not received within {self._read_timeout:g} s.")
        else:
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer with a problem document and close, reading what the client still sends for a
        moment: closing with unread data would reset the connection before it reads the answer."""
        self._refused = True
        body = problem_body(status, detail)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            f"content-type: {PROBLEM_JSON}\r\ncontent-length: {len(body)}\r\n".encode(),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)


class Server(uvicorn.Server):
    """uvicorn's server, which also answers the connections waiting in its listen backlog."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._take_backlog()
        await super().shutdown(sockets)

    async def _take_backlog(self) -> None:
        copies = []
        for server in self.servers:
            copies += [socket.socket(fileno=os.dup(s.fileno())) for s in server.sockets]
            server.close()  # the loop stops accepting; the copies keep the socket listening
        # Taken without yielding to the loop, the backlog empties far faster than clients arrive,
        # and the socket closes right after: a connection arriving later is refused, not reset.
        # Only one whose handshake ends in the instant between the last accept and the close is
        # reset, as it would be by any server closing its socket.
        accepted: list[socket.socket] = []
        for copy in copies:
            with copy:
                copy.setblocking(False)
                while len(accepted) < self.config.backlog:
                    try:
                        accepted.append(copy.accept()[0])
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # a client that gave up while waiting
                        continue
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:
            return self.config.http_protocol_class(  # type: ignore[call-arg]
                config=self.config, server_state=self.server_state, app_state=self.lifespan.state
            )

        for connection in accepted:
            await loop.connect_accepted_socket(protocol, connection)


class Worker(multiprocess.Process):
    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = Server(config=self.config)
        return self._server

    def join(self) -> None:
        super().join()
        if self.pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            mark_process_dead(self.pid)  # type: ignore[no-untyped-call]  # gauges leave the sums


class Supervisor(multiprocess.Multiprocess):
    def terminate_all(self) -> None:
        # With the supervisor's copy closed first, the listening socket closes with the last
        # worker's, after that worker has answered its backlog; new clients are then refused.
        for listening in self.sockets:
            listening.close()
        super().terminate_all()


def serve(settings: Settings) -> None:
    _raise_open_file_limit()
    config = uvicorn.Config(
        "app.http.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http=Protocol,
        ws="none",
        lifespan="on",
        log_config=log_config(settings.log_level),
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        timeout_keep_alive=settings.http_keepalive_timeout,
        timeout_graceful_shutdown=settings.shutdown_grace,
    )
    if settings.workers > 1:
        # uvicorn's supervisor starts, restarts and adds workers of this module-level class.
        multiprocess.Process = Worker  # type: ignore[misc]
        with _metrics_directory():
            _serve_metrics_port(settings)  # by the supervisor, for every worker
            Supervisor(config, sockets=[config.bind_socket()]).run()
        return
    _serve_metrics_port(settings)
    # uvicorn raises the signal again once it has stopped gracefully: that is a clean exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's start-up failure status


def _serve_metrics_port(settings: Settings) -> None:
    if not settings.metrics or settings.metrics_port is None:
        return
    host = settings.metrics_host or settings.host
    try:
        serve_metrics_port(host, settings.metrics_port)
    except OSError as error:
        logger.error("cannot serve metrics on %s:%d: %s", host, settings.metrics_port, error)
        raise SystemExit(3) from None  # as uvicorn does when it cannot bind PORT


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """Where the workers' metrics meet (app/observability/metrics.py): PROMETHEUS_MULTIPROC_DIR
    when the deployment sets it (and empties it before each start), else a directory of this
    run's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    directory = tempfile.mkdtemp(prefix="task-operations-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _raise_open_file_limit() -> None:
    """Every connection is a file descriptor; the usual soft limit (1024) is far below the hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
