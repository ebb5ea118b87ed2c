"""`epoa consume` answers `/healthz` and `/readyz` on its metrics port: ready only while the
store and the broker answer and it holds its assignment; 503 naming what is down otherwise.

Each test runs `epoa consume` as a process configured by `EPOA_*` variables, as deployed,
against a real PostgreSQL and a real broker, and takes one of them away.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from domain.errors import NotFoundError
from domain.registry import Registry
from domain.seal import SealKey
from epoa.audit_proofs import pem_of
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.broker import Broker, free_port
from tests.support.court_events import execution, judgment, publish
from tests.support.kafka_endpoint import BrokerError
from tests.support.people import People
from tests.support.postgres import unavailable
from tests.test_consumer_kafka import consumer_settings  # noqa: F401  (the `settings` fixture)
from tests.test_consumer_recovery import (
    Outage,
    outage_role,  # noqa: F401  (the `outage` fixture)
    settings_as_role,  # noqa: F401  (the `as_role` fixture)
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

EPOA = str(Path(sys.executable).with_name("epoa"))
WITHIN_S = 30.0
TOPIC = "court.case-events"
#: Longer than kafka-python's bootstrap timeout (30 s), after which a client that does not
#: wait for its broker gives up.
LATE_BROKER_S = 32.0


class Consume:
    """`epoa consume` with a metrics port, its log in `log`."""

    def __init__(
        self,
        settings: Settings,
        people: People,
        workdir: Path,
        *,
        trusted_ca: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        trusted = workdir / "trusted-ca.pem"
        trusted.write_bytes(people.ca.root.pem)
        self.port = free_port()
        self.log = workdir / "consume.log"
        extra = env or {}
        env = {name: value for name, value in os.environ.items() if not name.startswith("EPOA_")}
        env |= extra | {
            "EPOA_DATABASE_URL": settings.database_url,
            "EPOA_VAR_DIR": str(settings.var_dir),
            "EPOA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "EPOA_CASE_EVENTS_TOPIC": settings.case_events_topic,
            "EPOA_CASE_EVENTS_DLQ_TOPIC": settings.case_events_dlq_topic,
            "EPOA_CONSUMER_GROUP": settings.consumer_group,
            "EPOA_CONSUMER_METRICS_PORT": str(self.port),
        }
        if trusted_ca:
            env["EPOA_TRUSTED_CA"] = str(trusted)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [EPOA, "consume"], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
            )

    def get(self, path: str) -> tuple[int, str, Any]:
        """Status, media type and body of `GET path`; 0 while nothing listens."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read()
        except (urllib.error.URLError, ConnectionError):
            return 0, "", b""

    def ready(self) -> tuple[int, str, dict[str, Any]]:
        status, media_type, body = self.get("/readyz")
        return status, media_type, json.loads(body) if body else {}

    def wait_ready(self, status: int, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + WITHIN_S
        while True:
            found, _, body = self.ready()
            if found == status:
                return body
            assert self.process.poll() is None, self.log.read_text()
            if time.monotonic() > deadline:
                pytest.fail(f"/readyz stayed {found} {body} instead of {status}: {what}")
            time.sleep(0.2)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(WITHIN_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def consumer_of(url: str, tmp_path: Path, bootstrap: str, group: str) -> Settings:
    """The consumer's settings: topic `TOPIC` (and its `.dlq`) on `bootstrap`, in `group`."""
    return Settings(
        database_url=url,
        var_dir=tmp_path / "var",
        kafka_bootstrap=bootstrap,
        case_events_topic=TOPIC,
        case_events_dlq_topic=f"{TOPIC}.dlq",
        consumer_group=group,
    )


def test_readyz_is_503_naming_the_broker_while_it_is_killed_and_200_once_it_returns(
    postgres_url: str, tmp_path: Path, people: People, own_broker: Broker
) -> None:
    topic = TOPIC
    settings = consumer_of(postgres_url, tmp_path, own_broker.bootstrap, "epoa-health")
    for name, partitions in ((topic, 3), (f"{topic}.dlq", 1)):
        own_broker.create_topic(name, partitions)
    consume = Consume(settings, people, tmp_path)
    try:
        ready = consume.wait_ready(200, "the store and the broker answer")
        assert ready == {
            "status": "ready",
            "checks": {
                "store": "ok",
                "broker": "ok",
                "group": "ok",
                "polling": "ok",
                "settling": "ok",
            },
        }
        assert consume.get("/healthz")[:2] == (200, "application/json")
        metrics = consume.get("/metrics")[2].decode()
        assert "epoa_consumer_ready 1.0" in metrics
        offset = next(
            line for line in metrics.splitlines() if line.startswith("epoa_clock_offset_seconds ")
        )
        assert abs(float(offset.split()[1])) < 0.5  # this host's clock against the server's

        own_broker.kill()
        down = consume.wait_ready(503, "the broker was killed")
        status, media_type, _ = consume.ready()
        assert (status, media_type) == (503, "application/problem+json")
        assert down["type"] == "urn:epoa:problem:unavailable"
        assert "broker" in down["down"] and "store" not in down["down"]
        assert down["checks"]["store"] == "ok"
        assert consume.get("/healthz")[0] == 200  # alive all the same: no restart wanted

        own_broker.start()  # memory only: a new, empty broker on the same port
        for name, partitions in ((topic, 3), (f"{topic}.dlq", 1)):
            own_broker.create_topic(name, partitions)
        consume.wait_ready(200, "the broker is back")
        publish_and_see_applied(consume, settings, people, "H-1")
    finally:
        assert consume.stop() == 0, consume.log.read_text()


def test_a_consumer_started_before_its_broker_waits_for_it_then_applies_case_events(
    postgres_url: str, tmp_path: Path, people: People
) -> None:
    topic = TOPIC
    late = Broker(port=free_port(), log_path=tmp_path / "tansu.log")  # not started yet
    settings = consumer_of(postgres_url, tmp_path, late.bootstrap, "epoa-late-broker")
    consume = Consume(settings, people, tmp_path)
    try:
        down = consume.wait_ready(503, "no broker listens yet")
        assert down["checks"]["broker"].startswith("connecting: 127.0.0.1:"), down
        assert down["checks"]["store"] == "ok"
        time.sleep(LATE_BROKER_S)
        assert consume.process.poll() is None, consume.log.read_text()
        try:
            late.start()
        except BrokerError as error:
            unavailable(f"tansu broker: {error}")
        for name, partitions in ((topic, 3), (f"{topic}.dlq", 1)):
            late.create_topic(name, partitions)
        consume.wait_ready(200, "the broker came up")
        publish_and_see_applied(consume, settings, people, "L-1")
        assert "Traceback" not in consume.log.read_text()
    finally:
        assert consume.stop() == 0, consume.log.read_text()
        late.stop()


def test_a_consumer_waiting_for_its_broker_stops_cleanly_on_sigterm(
    postgres_url: str, tmp_path: Path, people: People
) -> None:
    settings = Settings(
        database_url=postgres_url,
        var_dir=tmp_path / "var",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens there
        consumer_group="epoa-no-broker",
    )
    consume = Consume(settings, people, tmp_path)
    consume.wait_ready(503, "no broker listens")
    began = time.monotonic()
    assert consume.stop() == 0, consume.log.read_text()
    assert time.monotonic() - began < 10
    assert "Traceback" not in consume.log.read_text()


def test_epoa_consume_on_the_embedded_default_trusts_the_demo_ca_as_serve_does(
    tmp_path: Path, people: People
) -> None:
    var = tmp_path / "var"
    settings = Settings(
        database_url=f"sqlite:///{var / 'epoa.sqlite'}",
        var_dir=var,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens there
        consumer_group="epoa-embedded",
    )
    consume = Consume(settings, people, tmp_path, trusted_ca=False)
    try:
        down = consume.wait_ready(503, "it started, and waits for its broker")
        assert down["down"] == ["broker"] and down["checks"]["store"] == "ok"
    finally:
        assert consume.stop() == 0, consume.log.read_text()
    assert f"trusting the DEMO CA {var / 'demo' / 'ca.pem'}" in consume.log.read_text()
    assert (var / "demo" / "ca.pem").is_file()


def test_readyz_is_503_naming_the_store_while_it_refuses_the_consumer_and_200_once_back(
    as_role: Settings, people: People, outage: Outage, tmp_path: Path
) -> None:
    consume = Consume(as_role, people, tmp_path)
    try:
        consume.wait_ready(200, "the store and the broker answer")
        outage.refuse_logins()
        try:
            began = time.monotonic()
            down = consume.wait_ready(503, "the store refuses the consumer's role")
            assert time.monotonic() - began < 10, "the probe must answer fast in an outage"
            assert down["down"] == ["store"]
            assert "does not answer" in down["detail"]
            assert outage.password not in json.dumps(down)
            assert consume.get("/healthz")[0] == 200
        finally:
            outage.allow_logins()
        consume.wait_ready(200, "the store is back")
    finally:
        assert consume.stop() == 0, consume.log.read_text()


def test_readyz_is_503_settling_while_a_case_sealed_by_an_unknown_key_waits_then_applied(
    settings: Settings, people: People, tmp_path: Path
) -> None:
    """A consumer started without the retired seal key (a rotation's step missed) cannot
    read a case sealed before: it names the message and the error, and never skips it."""
    case_number = "SETTLING-1"
    first = Consume(settings, people, tmp_path)
    try:
        first.wait_ready(200, "the store and the broker answer")
        publish_and_see_applied(first, settings, people, case_number)
    finally:
        assert first.stop() == 0, first.log.read_text()
    old_key = SealKey.from_pem((settings.var_dir / "seal-key.pem").read_bytes())
    new_key, retired = tmp_path / "new-seal-key.pem", tmp_path / "retired.pub.pem"
    rotated_to = SealKey.generate()
    new_key.write_bytes(rotated_to.to_pem())
    retired.write_text(pem_of(old_key.public_key))
    newer = tmp_path / "new.pub.pem"
    newer.write_text(pem_of(rotated_to.public_key))
    rotated = {"EPOA_SEAL_KEY": str(new_key)}
    missing = Consume(settings, people, tmp_path, env=rotated)
    try:
        missing.wait_ready(200, "nothing to settle yet")
        event = execution(people, case_number)
        publish(settings.kafka_bootstrap or "", settings.case_events_topic, [(b"", event)])
        down = missing.wait_ready(503, "the case's records are sealed by an unknown key")
        assert down["down"] == ["settling"]
        assert "unknown key" in down["checks"]["settling"]
        assert f"{settings.case_events_topic}[0]@1" in down["checks"]["settling"]
    finally:
        assert missing.stop() == 0, missing.log.read_text()
    with_key = Consume(
        settings, people, tmp_path, env=rotated | {"EPOA_RETIRED_SEAL_KEYS": str(retired)}
    )
    try:
        with_key.wait_ready(200, "the retired key is known again")
        store = build_registry(settings.model_copy(update={"retired_seal_keys": [newer]}))
        try:
            deadline = time.monotonic() + WITHIN_S
            while not store.get_case(case_number).concluded:
                assert time.monotonic() < deadline, with_key.log.read_text()
                time.sleep(0.1)
        finally:
            store.close()
    finally:
        assert with_key.stop() == 0, with_key.log.read_text()


def publish_and_see_applied(
    consume: Consume, settings: Settings, people: People, case_number: str
) -> None:
    """A judgment for `case_number` on the topic, then in the store within `WITHIN_S`."""
    event = judgment(people, case_number)
    key = case_number.encode()
    publish(settings.kafka_bootstrap or "", settings.case_events_topic, [(key, event)])
    store = build_registry(settings)
    try:
        deadline = time.monotonic() + WITHIN_S
        while not _has_case(store, case_number):
            assert time.monotonic() < deadline, consume.log.read_text()
            time.sleep(0.1)
    finally:
        store.close()


def _has_case(store: Registry, case_number: str) -> bool:
    try:
        return store.get_case(case_number).judgment is not None
    except NotFoundError:
        return False
