"""The read side as the API sees it: queries on per-thread connections, the projection
runner (in-process or apart) and read-your-writes waits."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from domain.registry import Registry
from projections import authority, cases, persons, poa_status
from projections.db import Database, connect
from projections.runner import ProjectionRunner


class ReadModels:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._local = threading.local()
        self._connections: list[Database] = []
        self._guard = threading.Lock()
        self.runner: ProjectionRunner | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        persons.create_table(self.db())

    def db(self) -> Database:
        """This thread's connection: readers never wait on the runner's transaction."""
        found: Database | None = getattr(self._local, "db", None)
        if found is None:
            found = self._local.db = connect(self.database_url)
            with self._guard:
                self._connections.append(found)
        return found

    def attach(self, registry: Registry, run: bool) -> None:
        """Create the read tables; with `run`, apply new events in a background thread."""
        self.runner = ProjectionRunner(registry, self.database_url)
        if run:
            self._thread = threading.Thread(
                target=self.runner.run_forever,
                args=(self._stop, 0.05),
                name="epoa-projections",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.runner is not None:
            self.runner.close()
        with self._guard:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    # -- positions ---------------------------------------------------------------------------

    def position(self) -> int:
        rows = self.db().fetch("SELECT min(position) FROM projection_tracking")
        return int(rows[0][0] or 0) if rows else 0

    def wait_for(self, position: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.position() < position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    # -- queries -----------------------------------------------------------------------------

    def names(self, iin: str) -> str | None:
        found = persons.find_person(self.db(), iin)
        return found["full_name"] if found else None

    def find_person(self, iin: str) -> dict[str, str] | None:
        return persons.find_person(self.db(), iin)

    def authority_at(
        self, case_number: str, attorney_iin: str, right: str, at: datetime
    ) -> list[str]:
        return authority.authority_at(self.db(), case_number, attorney_iin, right, at)

    def list_poas(self, **filters: Any) -> tuple[list[dict[str, Any]], str | None]:
        return poa_status.list_poas(self.db(), **filters)

    def get_case(self, case_number: str) -> dict[str, Any] | None:
        return cases.get_case(self.db(), case_number)
