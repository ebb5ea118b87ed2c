"""Any reachable Kafka-protocol broker, as the tests see it: readiness and topics."""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError


class BrokerError(RuntimeError):
    """The broker could not be found, started or reached."""


class KafkaEndpoint:
    """Any reachable Kafka-protocol broker: readiness checks and topic creation."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._admin: KafkaAdminClient | None = None

    @property
    def bootstrap(self) -> str:
        """The `host:port` clients connect to."""
        return self._bootstrap

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Block until the broker answers Kafka requests, or raise `BrokerError`."""
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if self._answers(timeout=min(max(deadline - time.monotonic(), 0.5), 2.0)):
                    return
                last_error = "a different broker answered"
            except (KafkaError, OSError) as error:
                last_error = repr(error)
            self._close_admin()
            time.sleep(0.1)
        raise BrokerError(
            f"no Kafka broker answered at {self.bootstrap} within {timeout:.0f} s "
            f"(last error: {last_error}){self._diagnostics()}"
        )

    def create_topic(self, name: str, partitions: int = 3, *, timeout: float = 10.0) -> None:
        """Create `name` and wait until every partition has a leader; an existing one is kept."""
        admin = self._admin_client(timeout=timeout)
        spec = {name: {"num_partitions": partitions, "replication_factor": 1}}
        timeout_ms = int(timeout * 1000)
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(spec, timeout_ms=timeout_ms)
        admin.wait_for_topics([name], timeout_ms=timeout_ms)

    def close(self) -> None:
        """Release the admin connection; the broker itself is not touched."""
        self._close_admin()

    def _admin_client(self, *, timeout: float) -> KafkaAdminClient:
        if self._admin is None:
            timeout_ms = int(timeout * 1000)
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="epoa-tests",
                bootstrap_timeout_ms=timeout_ms,
                request_timeout_ms=max(timeout_ms, 5000),
            )
        return self._admin

    def _close_admin(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def _answers(self, *, timeout: float) -> bool:
        """Whether the broker serves metadata requests (raises the client's errors if not)."""
        self._admin_client(timeout=timeout).list_topics()
        return True

    def _check_alive(self) -> None:
        """Raise early when the broker is known to be gone (only a managed one can know)."""

    def _diagnostics(self) -> str:
        return ""
