"""What the clients of the load saw: an `Attempt` is one HTTP request as its client saw it
(its status, or none when the connection failed or timed out, and what it was about), the
`Journal` keeps every attempt in the order they ended, thread-safe, and `request` sends one
request and makes its attempt."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

SUCCESS: Final = (200, 201)


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
