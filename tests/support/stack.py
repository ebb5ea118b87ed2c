"""The epoa processes under test: `Stack` runs `epoa serve --no-projections`, `epoa project`
and `epoa consume` over one fresh schema as docker-compose.yml runs them (production mode,
JSON logs, the least-privilege role made by `epoa db init`), kills any of them with SIGKILL
and starts it again, waits until each is ready, and reads from the store where the
consumer, the read models and the audit log have got to; `started_stack` gives a fresh
case-events topic with the three processes started and ready."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx
from cryptography.hazmat.primitives import serialization

from domain.seal import SealKey
from projections.rebuild import REBUILDS
from tests.support.people import People
from tests.support.postgres import connect as admin_connect
from tests.support.roles import ServiceRole

if TYPE_CHECKING:
    from tests.support.court_feed import Court

EPOA: Final = str(Path(sys.executable).with_name("epoa"))
NAMES: Final = ("api", "projector", "consumer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """The three epoa processes over one fresh schema, as docker-compose.yml runs them."""

    def __init__(
        self,
        role: ServiceRole,
        workdir: Path,
        people: People,
        *,
        kafka: str | None = None,
        topic: str = "court.case-events",
        group: str = "epoa-case-events",
        pool_size: int = 4,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """`pool_size`: each process's event store pool (the library adds 10 overflow
        connections): the PostgreSQL the tests share has few connections to spare."""
        self.role, self.workdir, self.people = role, workdir, people
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys = {r: f"{r}-{secrets.token_urlsafe(24)}" for r in ("portal", "court", "auditor")}
        self.seal_key = workdir / "seal.pem"
        self.seal_key.write_bytes(SealKey.generate().to_pem())
        (workdir / "api-keys.json").write_text(json.dumps({k: r for r, k in self.keys.items()}))
        (workdir / "ca.pem").write_bytes(
            people.ca.root.cert.public_bytes(serialization.Encoding.PEM)
        )
        (workdir / "db-password").write_text(role.password)
        base = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
        self.env = {
            **base,
            "EPOA_ENV": "production",
            "EPOA_LOG_FORMAT": "json",
            "EPOA_DATABASE_URL": role.url.replace(f":{role.password}@", "@")
            + f"&pool_size={pool_size}",
            "EPOA_DATABASE_PASSWORD_FILE": str(workdir / "db-password"),
            "EPOA_SEAL_KEY": str(self.seal_key),
            "EPOA_API_KEYS": str(workdir / "api-keys.json"),
            "EPOA_TRUSTED_CA": str(workdir / "ca.pem"),
            "EPOA_CASE_EVENTS_TOPIC": topic,
            "EPOA_CASE_EVENTS_DLQ_TOPIC": f"{topic}.dlq",
            "EPOA_CONSUMER_GROUP": group,
            "EPOA_CHECKPOINT_EVERY_SECONDS": "2",
            **({"EPOA_KAFKA_BOOTSTRAP": kafka} if kafka else {}),
            **(extra_env or {}),
        }
        self.commands = {
            "api": ["serve", "--port", str(self.port), "--no-projections"],
            "projector": ["project"],
            "consumer": ["consume"],
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_marks: dict[str, int] = {}
        self.starts: Counter[str] = Counter()
        self.kills: Counter[str] = Counter()

    # lifecycle

    def init_database(self) -> None:
        """`epoa db init` as the schema's owner, as the compose file's `db-init` does."""
        owner = {**self.env, "EPOA_ADMIN_DATABASE_URL": self.role.admin_url}
        done = subprocess.run([EPOA, "db", "init"], env=owner, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"epoa db init failed: {done.stdout}{done.stderr}")

    def start(self, name: str) -> None:
        assert name not in self.processes or self.processes[name].poll() is not None, name
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            self._log_marks[name] = out.tell()
            self.processes[name] = subprocess.Popen(
                [EPOA, *self.commands[name]],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )
        self.starts[name] += 1

    def start_all(self, names: Iterable[str] = NAMES) -> None:
        for name in names:
            self.start(name)

    def kill(self, name: str) -> None:
        """SIGKILL: no handler runs, no connection is closed politely."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        self.kills[name] += 1

    def stop(self, name: str, timeout: float = 30.0) -> int | None:
        """SIGTERM, as `docker compose stop` does; SIGKILL if it lingers."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    # readiness

    def log_since_start(self, name: str) -> str:
        with (self.logs / f"{name}.log").open("rb") as log:
            log.seek(self._log_marks.get(name, 0))
            return log.read().decode(errors="replace")

    def api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def consumer_assigned(self, partitions: int) -> bool:
        """The consumer's current run holds and has positioned every partition."""
        return self.log_since_start("consumer").count("resumes at offset") >= partitions

    def wait_up(self, name: str, partitions: int = 3, within: float = 60.0) -> float:
        """Wait until the process serves (API), or holds its partitions (consumer)."""
        began = time.monotonic()
        ready: Callable[[], bool] = {
            "api": self.api_ready,
            "consumer": lambda: self.consumer_assigned(partitions),
            "projector": lambda: True,  # it logs nothing when well: alive is all it shows
        }[name]
        while not ready():
            if not self.alive(name):
                raise RuntimeError(f"{name} exited\n{self.tail(name)}")
            if time.monotonic() - began > within:
                raise RuntimeError(f"{name} not up within {within} s\n{self.tail(name)}")
            time.sleep(0.1)
        return time.monotonic() - began

    def tail(self, name: str, chars: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def tails(self) -> str:
        return "\n".join(f"--- {name}.log\n{self.tail(name)}" for name in NAMES)

    # one-shot commands

    def run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EPOA, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # what the store says

    def positions(self) -> dict[str, int]:
        """The last record, the read models' position, the audit log's position."""
        return {
            "last": int(self._scalar("SELECT max(notification_id) FROM epoa_events") or 0),
            "read_models": int(
                self._scalar(
                    f"SELECT min(position) FROM projection_tracking WHERE name <> '{REBUILDS}'"
                )
                or 0
            ),
            "audit_log": int(self._scalar("SELECT position FROM audit_log_state") or 0),
        }

    def connections(self) -> int:
        """The sessions the service role holds right now, all processes together."""
        query = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
        return int(self._scalar(query, (self.role.name,)))

    def tracked_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the next offset the store will consume (`consumers.positions`)."""
        prefix = f"kafka:{topic}:"
        with admin_connect(self.role.admin_url) as conn:
            rows: list[Any] = conn.execute(
                "SELECT application_name, max(notification_id) FROM epoa_tracking "
                "WHERE application_name LIKE %s GROUP BY application_name",
                (prefix + "%",),
            ).fetchall()
        return {int(str(name).removeprefix(prefix)): int(last) for name, last in rows}

    def _scalar(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row (None without rows), read as the superuser."""
        with admin_connect(self.role.admin_url) as conn:
            row: Any = conn.execute(query.encode(), params).fetchone()
        return None if row is None else row[0]

    def wait_caught_up(self, court: Court | None, within: float = 120.0) -> None:
        """Every delivered case event consumed, every record in the read models and the
        audit log."""
        deadline = time.monotonic() + within
        while True:
            offsets = self.tracked_offsets(court.topic) if court is not None else {}
            wanted = court.next_offsets() if court is not None else {}
            consumed = all(offsets.get(p, 0) >= o for p, o in wanted.items())
            at = self.positions()
            if consumed and at["read_models"] == at["last"] == at["audit_log"]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not caught up in {within} s: positions {at}, consumed {offsets}, "
                    f"delivered up to {wanted}\n{self.tails()}"
                )
            time.sleep(0.3)


@contextmanager
def started_stack(
    broker: Any, group: str, workdir: Path, people: People, prefix: str, partitions: int
) -> Iterator[tuple[Any, Stack, str]]:
    """A fresh case-events topic and its DLQ, the service role, and the three processes
    started and ready; yields (role, stack, topic)."""
    from tests.support.roles import service_role

    topic = f"{prefix}.{uuid.uuid4().hex[:12]}"
    broker.create_topic(topic, partitions)
    broker.create_topic(f"{topic}.dlq", 1)
    with (
        service_role() as role,
        Stack(role, workdir, people, kafka=broker.bootstrap, topic=topic, group=group) as stack,
    ):
        stack.init_database()
        stack.start_all()
        stack.wait_up("api")
        stack.wait_up("consumer", partitions)
        yield role, stack, topic
