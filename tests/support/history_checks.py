"""The checks made after a run: `StoreHistory` reads every record of the store in log
order, decoded with the service's seal key (so every seal is checked once more), and
checks that nothing the clients saw succeed and nothing delivered to Kafka is missing and
nothing was recorded twice; `read_model_tables` dumps the read models, and
`table_differences` compares the live ones with a rebuild from zero."""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from domain.court_case import CourtCase
from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from domain.seal import SealKey
from epoa.storage import persistence_env
from projections.db import connect
from projections.rebuild import REBUILDS
from projections.runner import READ_MODELS
from tests.support.court_feed import Published
from tests.support.journal import Journal

READ_MODEL_TABLES: Final = [table for model in READ_MODELS for table in model.tables]


def evidence_document_id(evidence: dict[str, str]) -> str:
    """The id of the document an event's evidence holds, as `SignedDocument.document_id`
    gives it; only the canonical bytes are decoded (not the CMS and certificate beside them)."""
    document = json.loads(base64.b64decode(evidence["canonical"]))
    return str(UUID(str(document["document_id"])))


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
        kinds = (CourtCase.JudgmentEnteredIntoForce, CourtCase.ExecutionDocumentsIssued)
        carried.update(f"case-event:{e.source}#{e.event_id}" for e in self.of(*kinds))
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
    """Every row of every read model table and the positions, in a stable order; the count
    of rebuilds (`projections.rebuild.REBUILDS`) is no read model's row."""
    db = connect(admin_url)
    try:
        found = {
            table: sorted(db.fetch(f"SELECT * FROM {table}"), key=repr)
            for table in [*READ_MODEL_TABLES, "projection_tracking"]
        }
    finally:
        db.close()
    found["projection_tracking"] = [r for r in found["projection_tracking"] if r[0] != REBUILDS]
    return found


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
