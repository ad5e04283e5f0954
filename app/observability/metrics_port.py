"""GET /metrics on a port of its own (METRICS_PORT), apart from the API's.

One thread of the process that runs the server answers it: with one worker, that worker's process,
reading the metrics it keeps in memory; with several (WORKERS > 1), the supervisor, reading the
files in which every worker writes its values (PROMETHEUS_MULTIPROC_DIR, see metrics.py), as any
worker does on the API's port. So a scrape sees every worker's sum, and the port is bound once,
by a process that lives as long as the service, whichever worker is restarted.
"""

import os
import socket
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from threading import Thread
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector

PATH = "/metrics"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress does not hold the process up at exit


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # a line per scrape says nothing


def serve_metrics_port(host: str, port: int) -> WSGIServer:
    """Answer GET /metrics on host:port from a daemon thread; raises OSError when it cannot bind.

    Call it after PROMETHEUS_MULTIPROC_DIR is set, when it is to be.
    """
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"Not found: the metrics are at {PATH}.\n".encode()]
        answer: Iterable[bytes] = metrics(environ, start_response)
        return answer

    # The address family of the host (IPv6 for "::"), as http.server finds it.
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, address = found[0][0], str(found[0][4][0])

    class Server(_Server):
        address_family = family

    server = make_server(address, port, app, Server, handler_class=_Handler)
    Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
