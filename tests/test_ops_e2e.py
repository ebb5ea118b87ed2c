"""The processes docker-compose.yml runs, started as they are there: `epoa db init` as the
owner, then `epoa serve --no-projections`, `epoa project` and `epoa consume` as the
least-privilege role, in production mode with JSON logs, on PostgreSQL and a real broker.
A POA issued over HTTP ends when the court's two signed events arrive over Kafka."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from cryptography.hazmat.primitives import serialization

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.seal import SealKey
from tests.support.api import body, cloud_event
from tests.support.kafka_endpoint import KafkaEndpoint
from tests.support.people import People
from tests.support.roles import ServiceRole, service_role

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]
EPOA = str(Path(sys.executable).with_name("epoa"))
KEYS = {role: f"{role}-{secrets.token_urlsafe(24)}" for role in ("portal", "court")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deployment_env(
    role: ServiceRole, tmp_path: Path, people: People, broker: str, topic: str, group: str
) -> dict[str, str]:
    """The environment docker-compose.yml gives the epoa services, with local paths."""
    (tmp_path / "seal.pem").write_bytes(SealKey.generate().to_pem())
    (tmp_path / "api-keys.json").write_text(json.dumps({k: r for r, k in KEYS.items()}))
    ca = people.ca.root.cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "ca.pem").write_bytes(ca)
    (tmp_path / "db-service-password").write_text(role.password)
    base = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    return {
        **base,
        "EPOA_ENV": "production",
        "EPOA_LOG_FORMAT": "json",
        "EPOA_DATABASE_URL": role.url.replace(f":{role.password}@", "@"),
        "EPOA_DATABASE_PASSWORD_FILE": str(tmp_path / "db-service-password"),
        "EPOA_KAFKA_BOOTSTRAP": broker,
        "EPOA_CASE_EVENTS_TOPIC": topic,
        "EPOA_CASE_EVENTS_DLQ_TOPIC": f"{topic}.dlq",
        "EPOA_CONSUMER_GROUP": group,
        "EPOA_SEAL_KEY": str(tmp_path / "seal.pem"),
        "EPOA_API_KEYS": str(tmp_path / "api-keys.json"),
        "EPOA_TRUSTED_CA": str(tmp_path / "ca.pem"),
    }


@contextmanager
def process(name: str, args: list[str], env: dict[str, str], logs: Path) -> Iterator[None]:
    """A running `epoa` process; stopped with SIGTERM (as `docker compose stop` does)."""
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        child = subprocess.Popen([EPOA, *args], env=env, cwd=logs, stdout=out, stderr=out)
    try:
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def call(url: str, key: str | None = None, data: dict[str, Any] | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=payload, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def eventually(check: Any, what: str, logs: Path, within: float = 90.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        try:
            found = check()
        except (OSError, urllib.error.HTTPError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            dump = "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in logs.glob("*.log"))
            pytest.fail(f"{what} did not happen in {within} s\n{dump}")
        time.sleep(0.3)


def publish(bootstrap: str, topic: str, key: str, events: list[dict[str, Any]]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for event in events:
        producer.produce(topic, key=key.encode(), value=json.dumps(event).encode())
    assert producer.flush(15) == 0, "the court's events were not delivered"


def test_a_poa_issued_over_http_ends_when_the_court_events_arrive_over_kafka(
    kafka_broker: KafkaEndpoint, fresh_group_id: str, tmp_path: Path, people: People
) -> None:
    topic = f"epoa-e2e.{uuid.uuid4().hex[:12]}"
    kafka_broker.create_topic(topic, 3)
    kafka_broker.create_topic(f"{topic}.dlq", 1)
    case_number = f"7594-26-00-2/{uuid.uuid4().int % 100000}"
    logs = tmp_path / "logs"
    logs.mkdir()
    with service_role() as role, ExitStack() as running:
        env = deployment_env(role, tmp_path, people, kafka_broker.bootstrap, topic, fresh_group_id)
        owner = {**env, "EPOA_ADMIN_DATABASE_URL": role.admin_url}
        init = subprocess.run([EPOA, "db", "init"], env=owner, capture_output=True, text=True)
        assert init.returncode == 0, init.stdout + init.stderr
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        serve = ["serve", "--port", str(port), "--no-projections"]
        running.enter_context(process("api", serve, env, logs))
        running.enter_context(process("projector", ["project"], env, logs))
        running.enter_context(process("consumer", ["consume"], env, logs))
        eventually(lambda: call(f"{api}/readyz")["status"] == "ready", "the API ready", logs)

        issued = call(
            f"{api}/v1/powers-of-attorney",
            KEYS["portal"],
            body(people.issue(case_number=case_number)),
        )
        poa = f"{api}/v1/powers-of-attorney/{issued['poa_id']}"
        eventually(lambda: call(poa, KEYS["portal"])["status"] == "active", "the POA shown", logs)

        publish(
            kafka_broker.bootstrap,
            topic,
            case_number,
            [
                cloud_event(people, JUDGMENT_IN_FORCE, case_number, str(uuid.uuid4())),
                cloud_event(people, EXECUTION_DOCUMENTS_ISSUED, case_number, str(uuid.uuid4())),
            ],
        )
        ended = eventually(
            lambda: (state := call(poa, KEYS["portal"]))["status"] == "terminated" and state,
            "the POA terminated",
            logs,
        )
        assert ended["termination"]["reason"] == "case_concluded"
    for name in ("api", "projector", "consumer"):
        lines = (logs / f"{name}.log").read_text().splitlines()
        assert lines and all(json.loads(line)["level"] for line in lines), name
