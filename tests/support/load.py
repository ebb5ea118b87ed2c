"""Load, chaos and the checks made afterwards, for the resilience tests and `make soak`.

- `Stack`: `epoa serve --no-projections`, `epoa project` and `epoa consume` as
  docker-compose.yml runs them (production mode, JSON logs, the least-privilege role made by
  `epoa db init`), each of which can be killed with SIGKILL and started again.
- `Load`: portal clients issuing and revoking POAs over HTTP and courts checking authority;
  `Court`: a court system publishing signed case events to Kafka, concluding cases. Both
  record what each request or message did, as the client saw it.
- `StoreHistory`: every record of the store, decoded (and its seal checked) with the
  service's key, and the checks that nothing the clients saw succeed is missing and
  nothing was recorded twice; `read_model_tables` dumps the read models for comparison
  with a rebuild from zero.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import confluent_kafka
import httpx
from cryptography.hazmat.primitives import serialization

from domain.canonical import canonical_bytes
from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE, CourtCase
from domain.power_of_attorney import PowerOfAttorney, evidence_document_id
from domain.registry import Registry
from domain.seal import SealKey
from epoa.storage import persistence_env
from projections.db import connect
from projections.runner import READ_MODELS
from tests.support.court_events import signed_case_event
from tests.support.people import Actor, People, now_text
from tests.support.pki import b64, sign_cms
from tests.support.postgres import connect as admin_connect
from tests.support.roles import ServiceRole

EPOA: Final = str(Path(sys.executable).with_name("epoa"))
NAMES: Final = ("api", "projector", "consumer")
RIGHT: Final = "represent_first_instance"
SUCCESS: Final = (200, 201)
READ_MODEL_TABLES: Final = [table for model in READ_MODELS for table in model.tables]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signed(people: People, document: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """The request body a portal sends: the document and the actor's CMS over its bytes."""
    signature = sign_cms(canonical_bytes(document), actor.issued, people.ca.chain)
    return {"document": document, "signature": b64(signature)}


# -- the processes ------------------------------------------------------------------------


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
            "read_models": int(self._scalar("SELECT min(position) FROM projection_tracking") or 0),
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


# -- the cases the load works on ----------------------------------------------------------


class CaseBook:
    """Open cases receive POAs; a case with enough of them gets concluded by the court."""

    def __init__(self, prefix: str, open_cases: int = 6, rng: random.Random | None = None):
        self.prefix, self.open_target = prefix, open_cases
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self.open: list[str] = []
        self.poas: dict[str, list[str]] = defaultdict(list)
        self.concluding: set[str] = set()
        self._refill()

    def _refill(self) -> None:
        while len(self.open) < self.open_target:
            self.open.append(f"{self.prefix}-{next(self._numbers)}")

    def pick(self) -> str:
        with self._lock:
            return self.rng.choice(self.open)

    def issued(self, case: str, poa_id: str) -> None:
        with self._lock:
            self.poas[case].append(poa_id)

    def take_ripe(self, least: int) -> str | None:
        """An open case with at least `least` POAs, no longer offered for new ones."""
        with self._lock:
            ripe = [case for case in self.open if len(self.poas[case]) >= least]
            if not ripe:
                return None
            case = self.rng.choice(ripe)
            self.open.remove(case)
            self.concluding.add(case)
            self._refill()
            return case

    def some_poa(self) -> tuple[str, str] | None:
        with self._lock:
            choices = [(case, poa) for case in self.open for poa in self.poas[case]]
        return self.rng.choice(choices) if choices else None


# -- what clients saw -----------------------------------------------------------------------


@dataclass
class Attempt:
    """One HTTP request as its client saw it."""

    kind: str
    """`issue`, `revoke`, `authority`, `read` or `list`."""
    started: float
    elapsed: float
    status: int | None
    """None: no response (connection refused or reset, or the client's timeout)."""
    document_id: str | None = None
    poa_id: str | None = None
    case_number: str | None = None
    problem: str | None = None
    content_type: str | None = None
    retry_after: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCESS


@dataclass
class Journal:
    """Every attempt, in the order they ended; thread-safe."""

    attempts: list[Attempt] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def save(self, path: Path) -> None:
        """JSON lines, one attempt each, for a look afterwards."""
        with path.open("w") as out:
            for attempt in self.snapshot():
                out.write(json.dumps(dataclasses.asdict(attempt)) + "\n")

    def commands(self) -> dict[str, list[Attempt]]:
        """The attempts of each signed document, by document_id."""
        found: dict[str, list[Attempt]] = defaultdict(list)
        for attempt in self.snapshot():
            if attempt.document_id is not None:
                found[attempt.document_id].append(attempt)
        return found


def request(
    client: httpx.Client, kind: str, method: str, path: str, key: str, **options: Any
) -> tuple[Attempt, dict[str, Any] | None]:
    """One request; a connection error or a timeout is an attempt without a status."""
    began = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    try:
        response = client.request(method, path, headers=headers, **options)
    except httpx.TransportError as error:
        attempt = Attempt(kind, began, time.monotonic() - began, None, error=repr(error))
        return attempt, None
    elapsed = time.monotonic() - began
    content_type = response.headers.get("content-type")
    try:
        body = response.json()
    except ValueError:
        body = None
    problem = body.get("type") if isinstance(body, dict) and response.status_code >= 400 else None
    attempt = Attempt(
        kind,
        began,
        elapsed,
        response.status_code,
        problem=problem,
        content_type=content_type,
        retry_after=response.headers.get("retry-after"),
    )
    return attempt, body if isinstance(body, dict) else None


# -- portal and court over HTTP ---------------------------------------------------------------


class Load:
    """Portal clients issuing (and some revoking) POAs, courts checking authority.

    A command without an answer (connection refused or reset, a timeout) or answered 503 is
    sent again with the same signed document for up to `retry_for` seconds, as a portal
    would: the registry must record it once however many times it arrives."""

    def __init__(
        self,
        url: str,
        keys: dict[str, str],
        people: People,
        cases: CaseBook,
        *,
        issuers: int = 2,
        checkers: int = 1,
        revoke_share: float = 0.2,
        pause: float = 0.0,
        timeout: float = 90.0,
        retry_for: float = 60.0,
        seed: int = 0,
    ) -> None:
        self.url, self.keys, self.people, self.cases = url, keys, people, cases
        self.issuers, self.checkers = issuers, checkers
        self.revoke_share, self.pause = revoke_share, pause
        self.timeout, self.retry_for = timeout, retry_for
        self.seed = seed
        self.journal = Journal()
        self.stopping = threading.Event()
        self.failures: list[str] = []
        self._threads: list[threading.Thread] = []
        self._attorneys = [people.attorney, people.second_attorney, people.third_attorney]
        self._revoked: set[str] = set()
        self._revoked_lock = threading.Lock()

    def start(self) -> Load:
        workers: list[Callable[[random.Random], None]] = [self._issuer] * self.issuers
        workers += [self._checker] * self.checkers
        for number, work in enumerate(workers):
            rng = random.Random(self.seed * 1000 + number)
            thread = threading.Thread(
                target=self._guarded, args=(work, rng), name=f"load-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _guarded(self, work: Callable[[random.Random], None], rng: random.Random) -> None:
        try:
            work(rng)
        except Exception as error:  # a defect of the load itself: the test must see it
            self.failures.append(f"{threading.current_thread().name}: {error!r}")
            raise

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=self.timeout)

    # portal

    def _issuer(self, rng: random.Random) -> None:
        with self._client() as client:
            while not self.stopping.is_set():
                case = self.cases.pick()
                attorney = rng.choice(self._attorneys)
                document = self.people.issue_document(
                    case_number=case, attorneys=[{"iin": attorney.iin}]
                )
                body = signed(self.people, document, self.people.principal)
                answer = self.command(client, "issue", "/v1/powers-of-attorney", body, case)
                if answer is not None:
                    self.cases.issued(case, answer["poa_id"])
                if rng.random() < self.revoke_share:
                    self._revoke_one(client, rng)
                if self.pause:
                    self.stopping.wait(self.pause)

    def _revoke_one(self, client: httpx.Client, rng: random.Random) -> None:
        picked = self.cases.some_poa()
        if picked is None:
            return
        case, poa_id = picked
        with self._revoked_lock:
            if poa_id in self._revoked:
                return
            self._revoked.add(poa_id)
        document = {
            "type": "epoa.revoke",
            "document_id": str(uuid.uuid4()),
            "signed_at": now_text(),
            "poa_id": poa_id,
            "reason": "load test",
        }
        body = signed(self.people, document, self.people.principal)
        path = f"/v1/powers-of-attorney/{poa_id}/revocation"
        self.command(client, "revoke", path, body, case, poa_id=poa_id)

    def command(
        self,
        client: httpx.Client,
        kind: str,
        path: str,
        body: dict[str, Any],
        case: str,
        poa_id: str | None = None,
    ) -> dict[str, Any] | None:
        """Send a signed command until it is answered (other than 503) or `retry_for`
        passes; the answer's body if it succeeded."""
        document_id = body["document"]["document_id"]
        give_up = time.monotonic() + self.retry_for
        while True:
            attempt, answer = request(client, kind, "POST", path, self.keys["portal"], json=body)
            attempt.document_id, attempt.case_number = document_id, case
            attempt.poa_id = (answer or {}).get("poa_id", poa_id) if attempt.succeeded else poa_id
            self.journal.add(attempt)
            if attempt.status is not None and attempt.status != 503:
                return answer if attempt.succeeded else None
            if time.monotonic() > give_up or self.stopping.is_set():
                return None
            time.sleep(0.2)

    # court

    def _checker(self, rng: random.Random) -> None:
        with self._client() as client:
            while not self.stopping.is_set():
                self.check_once(client, rng)
                if self.pause:
                    self.stopping.wait(self.pause)

    def check_once(self, client: httpx.Client, rng: random.Random) -> None:
        case = self.cases.pick()
        attorney = rng.choice(self._attorneys)
        params = {"case_number": case, "attorney_iin": attorney.iin, "right": RIGHT}
        attempt, _ = request(
            client, "authority", "GET", "/v1/authority", self.keys["court"], params=params
        )
        attempt.case_number = case
        self.journal.add(attempt)
        if attempt.status is None:  # the API is down: do not spin
            self.stopping.wait(0.05)
            return
        picked = self.cases.some_poa()
        if picked is not None:
            path = f"/v1/powers-of-attorney/{picked[1]}"
            attempt, _ = request(client, "read", "GET", path, self.keys["court"])
            attempt.poa_id, attempt.case_number = picked[1], picked[0]
            self.journal.add(attempt)


# -- a court publishing to Kafka ----------------------------------------------------------


@dataclass(frozen=True)
class Published:
    case_number: str
    kind: str
    source: str
    event_id: str
    partition: int
    offset: int


class Court:
    """Concludes ripe cases: a judgment and an execution document per case, published to
    Kafka, keyed by case number; now and then one of them twice (a redelivery)."""

    SOURCE: Final = "urn:kz:court:ecourt"

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        people: People,
        cases: CaseBook,
        *,
        every: float = 1.0,
        ripe_at: int = 3,
        duplicate_share: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.bootstrap, self.topic, self.people, self.cases = bootstrap, topic, people, cases
        self.every, self.ripe_at, self.duplicate_share = every, ripe_at, duplicate_share
        self.rng = random.Random(seed)
        self.delivered: list[Published] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="court", daemon=True)
        self._producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
        )

    def start(self) -> Court:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(30)
        left = self._producer.flush(30)
        if left:
            self.errors.append(f"{left} case events still queued at the end")

    def __enter__(self) -> Court:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self.stopping.wait(self.every):
            case = self.cases.take_ripe(self.ripe_at)
            if case is not None:
                self.conclude(case)
            self._producer.poll(0)

    def conclude(self, case: str) -> None:
        events = [
            (JUDGMENT_IN_FORCE, str(uuid.uuid4())),
            (EXECUTION_DOCUMENTS_ISSUED, str(uuid.uuid4())),
        ]
        if self.rng.random() < self.duplicate_share:
            events.append(self.rng.choice(events))
        for kind, event_id in events:
            value = signed_case_event(self.people, kind, case, self.SOURCE, event_id)
            self._producer.produce(
                self.topic,
                key=case.encode(),
                value=value,
                on_delivery=self._delivered(case, kind, event_id),
            )
        self._producer.poll(0)

    def _delivered(
        self, case: str, kind: str, event_id: str
    ) -> Callable[[confluent_kafka.KafkaError | None, Any], None]:
        def report(error: confluent_kafka.KafkaError | None, message: Any) -> None:
            with self._lock:
                if error is not None:
                    self.errors.append(f"{case} {kind}: {error}")
                else:
                    self.delivered.append(
                        Published(
                            case, kind, self.SOURCE, event_id, message.partition(), message.offset()
                        )
                    )

        return report

    def next_offsets(self) -> dict[int, int]:
        """Per partition, one past the last offset delivered."""
        with self._lock:
            found: dict[int, int] = {}
            for event in self.delivered:
                found[event.partition] = max(found.get(event.partition, 0), event.offset + 1)
            return found


# -- the store, afterwards ------------------------------------------------------------------


class StoreHistory:
    """Every record of the store in log order, decoded with the service's seal key (so
    every seal is checked once more), and what it says about the load."""

    def __init__(self, admin_url: str, seal_key: Path) -> None:
        env = persistence_env(admin_url) | {"CREATE_TABLE": "n"}
        registry = Registry(env, SealKey.from_pem(seal_key.read_bytes()))
        try:
            self.events = list(self._read(registry))
        finally:
            registry.close()

    @staticmethod
    def _read(registry: Registry) -> Iterator[object]:
        position = 0
        while True:
            batch = registry.recorder.select_notifications(position, 500, inclusive_of_start=False)
            if not batch:
                return
            for notification in batch:
                yield registry.mapper.to_domain_event(notification)
            position = batch[-1].id

    def of(self, *kinds: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kinds)]

    def check(self, journal: Journal, delivered: Iterable[Published]) -> list[str]:
        """Every problem found; none means nothing lost and nothing twice."""
        problems: list[str] = []
        problems += self._case_events_once(delivered)
        problems += self._concluded_cases_end_their_poas_once()
        problems += self._commands_once(journal)
        return problems

    def _case_events_once(self, delivered: Iterable[Published]) -> list[str]:
        kinds = (CourtCase.JudgmentEnteredIntoForce, CourtCase.ExecutionDocumentsIssued)
        stored = Counter((e.source, e.event_id) for e in self.of(*kinds))
        problems = [f"case event {key} stored {n} times" for key, n in stored.items() if n != 1]
        for event in {(e.source, e.event_id): e for e in delivered}.values():
            if stored[(event.source, event.event_id)] != 1:
                problems.append(f"case event {event} delivered to Kafka but not in the store")
        return problems

    def _concluded_cases_end_their_poas_once(self) -> list[str]:
        problems = []
        concluded = Counter(e.originator_id for e in self.of(CourtCase.Concluded))
        problems += [f"case {case} concluded {n} times" for case, n in concluded.items() if n > 1]
        ends = Counter(
            e.originator_id for e in self.of(PowerOfAttorney.Revoked, PowerOfAttorney.Terminated)
        )
        problems += [f"POA {poa} ended {n} times" for poa, n in ends.items() if n > 1]
        attached = defaultdict(list)
        for event in self.of(CourtCase.PowerOfAttorneyAttached):
            attached[event.originator_id].append(event.poa_id)
        for case in concluded:
            problems += [
                f"POA {poa} of concluded case {case} never ended"
                for poa in attached[case]
                if ends[poa] != 1
            ]
        terminated = {e.originator_id for e in self.of(PowerOfAttorney.Terminated)}
        in_concluded = {poa for case in concluded for poa in attached[case]}
        problems += [
            f"POA {poa} terminated but its case did not conclude"
            for poa in terminated - in_concluded
        ]
        return problems

    def _commands_once(self, journal: Journal) -> list[str]:
        from domain.accepted_document import AcceptedDocument

        problems = []
        accepted = Counter(e.document_id for e in self.of(AcceptedDocument.Accepted))
        accepted_poa = {e.document_id: str(e.poa_id) for e in self.of(AcceptedDocument.Accepted)}
        carried = Counter(
            evidence_document_id(e.evidence)
            for e in self.of(PowerOfAttorney.Issued, PowerOfAttorney.Revoked)
        )
        issued_poa = {
            evidence_document_id(e.evidence): str(e.originator_id)
            for e in self.of(PowerOfAttorney.Issued)
        }
        for document_id, n in carried.items():
            if n != 1 or accepted[document_id] != 1:
                times = accepted[document_id]
                problems.append(f"document {document_id}: in {n} events, accepted {times} times")
        for document_id in accepted.keys() - carried.keys():
            problems.append(f"document {document_id} accepted without its command's event")
        for document_id, attempts in journal.commands().items():
            answered = [a for a in attempts if a.succeeded]
            if not answered:
                continue
            if carried[document_id] != 1:
                problems.append(
                    f"{attempts[0].kind} {document_id} answered {answered[0].status} "
                    "but is not in the store"
                )
                continue
            if attempts[0].kind == "issue":
                poa_ids = {a.poa_id for a in answered} | {issued_poa[document_id]}
                if len(poa_ids) != 1 or accepted_poa.get(document_id) not in poa_ids:
                    problems.append(f"issue {document_id} answered with other POAs: {poa_ids}")
        return problems


def read_model_tables(admin_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read model table and the positions, in a stable order."""
    db = connect(admin_url)
    try:
        return {
            table: sorted(db.fetch(f"SELECT * FROM {table}"), key=repr)
            for table in [*READ_MODEL_TABLES, "projection_tracking"]
        }
    finally:
        db.close()


def table_differences(
    live: dict[str, list[tuple[Any, ...]]], rebuilt: dict[str, list[tuple[Any, ...]]]
) -> list[str]:
    found = []
    for table in sorted(live.keys() | rebuilt.keys()):
        before, after = set(live.get(table, [])), set(rebuilt.get(table, []))
        if live.get(table) != rebuilt.get(table):
            found.append(
                f"{table}: {len(live.get(table, []))} rows live, {len(rebuilt.get(table, []))} "
                f"rebuilt; only live: {sorted(before - after, key=repr)[:3]}; "
                f"only rebuilt: {sorted(after - before, key=repr)[:3]}"
            )
    return found


# -- chaos ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    round: int
    name: str
    at: float
    down_for: float
    back_after: float
    """Seconds from the restart until it served again (API) or held its partitions."""


def chaos(
    stack: Stack,
    rounds: int,
    rng: random.Random,
    *,
    between: tuple[float, float] = (1.0, 3.0),
    down: tuple[float, float] = (0.0, 1.0),
    partitions: int = 3,
    report: Callable[[str], None] = print,
) -> list[Kill]:
    """`rounds` times: wait a random while, SIGKILL one of the three processes, leave it
    down a random while, start it again and wait until it is back. The victims come in
    shuffled threes, so that every process dies in any run of three rounds or more. A
    consumer is killed only once it holds its partitions again: on the test broker (tansu),
    a member that leaves before its first assignment can leave the group unable to assign
    anyone (`tests/support/broker.py`)."""
    kills = []
    victims: list[str] = []
    began = time.monotonic()
    for number in range(1, rounds + 1):
        if not victims:
            victims = rng.sample(NAMES, len(NAMES))
        time.sleep(rng.uniform(*between))
        name = victims.pop()
        at = time.monotonic() - began
        stack.kill(name)
        pause = rng.uniform(*down)
        time.sleep(pause)
        stack.start(name)
        back = stack.wait_up(name, partitions)
        kills.append(Kill(number, name, at, pause, back))
        report(f"round {number}: {name} killed at {at:.1f} s, down {pause:.1f} s, up {back:.1f} s")
    return kills


# -- memory and latency -----------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process, from /proc (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    found = list(values)
    return statistics.median(found) if found else 0.0


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
