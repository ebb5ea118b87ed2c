"""The HTTP load on the registry: `Load` runs portal clients issuing (and some revoking)
POAs, each command signed with `signed` and sent again on no answer or 503 as a portal
would, and courts checking authority and reading POAs; `CaseBook` holds the open cases the
POAs go to and hands over the ones with enough of them for the court to conclude. Every
request goes into the load's `Journal`."""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final

import httpx

from domain.canonical import canonical_bytes
from tests.support.journal import Journal, request
from tests.support.people import Actor, People, now_text
from tests.support.pki import b64, sign_cms

RIGHT: Final = "represent_first_instance"


def signed(people: People, document: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """The request body a portal sends: the document and the actor's CMS over its bytes."""
    signature = sign_cms(canonical_bytes(document), actor.issued, people.ca.chain)
    return {"document": document, "signature": b64(signature)}


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
