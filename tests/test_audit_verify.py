"""`epoa audit verify` over a real store (SQLite and PostgreSQL) and over its export."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE, CourtCase
from domain.errors import StoreUnavailableError
from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from domain.seal import Finding, SealKey
from epoa.audit import audit_export, audit_store
from epoa.audit_commands import verify_store
from epoa.audit_core import AuditResult
from epoa.audit_export import export_to
from epoa.audit_proofs import pem_of
from epoa.audit_report import Reporter
from epoa.settings import Settings
from epoa.wiring import SettingsError, build_registry
from projections.checkpoints import CheckpointLog
from projections.db import Database, connect
from tests.conftest import Clock
from tests.support.people import People, case_event

ORIGIN = "epoa/audit-test"


@dataclass
class Audited:
    """A registry, its audit log (a head per batch, each also in the witness file), and a
    connection to the same database."""

    registry: Registry
    log: CheckpointLog
    db: Database
    url: str
    witness: Path
    receipts: list[dict[str, Any]] = field(default_factory=list)

    def receipts_file(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(r) + "\n" for r in self.receipts))
        return path


@contextmanager
def opened(settings: Settings, tmp_path: Path, clock: Clock | None = None) -> Iterator[Audited]:
    registry = build_registry(settings, clock=clock)
    witness = tmp_path / "witness.txt"
    log = CheckpointLog(
        registry, settings.database_url, ORIGIN, every_records=1, witness_file=witness
    )
    db = connect(settings.database_url)
    try:
        yield Audited(registry, log, db, settings.database_url, witness)
    finally:
        db.close()
        log.close()
        registry.close()


@pytest.fixture
def audited(settings: Settings, clock: Clock, tmp_path: Path) -> Iterator[Audited]:
    with opened(settings, tmp_path, clock) as audited:
        yield audited


@dataclass(frozen=True)
class Story:
    revoked: UUID
    """Issued, then revoked: versions 1 and 2."""
    changed: UUID
    """Issued, an attorney added, the first attorney renounced: versions 1 to 3."""
    concluded: UUID
    """Ended with its case (CASE-C), which concluded."""


def tell(audited: Audited, people: People) -> Story:
    registry, receipts = audited.registry, audited.receipts
    first = registry.issue(people.issue(case_number="CASE-A"))
    outcome = registry.revoke(
        first.poa.id, people.act("epoa.revoke", first.poa.id, people.principal)
    )
    second = registry.issue(people.issue(case_number="CASE-B"))
    poa = second.poa.id
    added = registry.add_attorney(
        poa,
        people.act(
            "epoa.add-attorney", poa, people.principal, attorney={"iin": people.second_attorney.iin}
        ),
    )
    renounced = registry.renounce(
        poa, people.act("epoa.renounce", poa, people.attorney, attorney_iin=people.attorney.iin)
    )
    third = registry.issue(people.issue(case_number="CASE-C"))
    registry.record_case_event(case_event(people, JUDGMENT_IN_FORCE, "CASE-C"))
    ended = registry.record_case_event(case_event(people, EXECUTION_DOCUMENTS_ISSUED, "CASE-C"))
    for done in (first, outcome, second, added, renounced, third, ended):
        assert done.receipt is not None
        receipts.append(done.receipt)
    return Story(first.poa.id, poa, third.poa.id)


def verify(audited: Audited, people: People, **options: Any) -> tuple[AuditResult, list[Finding]]:
    found: list[Finding] = []
    result = audit_store(
        audited.registry, audited.db, people.verifier, ORIGIN, on_finding=found.append, **options
    )
    assert result.findings == len(found)
    return result, found


def test_an_untouched_history_verifies_intact_against_its_checkpoints_witness_and_receipts(
    audited: Audited, people: People, tmp_path: Path
) -> None:
    tell(audited, people)
    audited.log.catch_up()
    receipts = audited.receipts_file(tmp_path / "receipts.jsonl")
    result, found = verify(audited, people, witness=audited.witness, receipts=receipts)
    assert found == []
    assert result.intact and result.records == audited.registry.recorder.max_notification_id()
    assert result.checkpoints_checked >= 2 and result.skipped == []


def test_the_export_verifies_with_no_database_and_names_an_edited_record(
    audited: Audited, people: People, tmp_path: Path
) -> None:
    story = tell(audited, people)
    audited.log.catch_up()
    export = tmp_path / "export.jsonl"
    records, checkpoints = export_to(export, audited.registry, audited.db, ORIGIN)
    assert (records, checkpoints) == (audited.registry.recorder.max_notification_id(), 1)
    assert audit_export(export, people.verifier, witness=audited.witness).intact

    lines = [json.loads(line) for line in export.read_text().splitlines()]
    target = next(x for x in lines if x.get("originator_id") == str(story.revoked))
    assert target["payload"]["case_number"] == "CASE-A"
    assert target["evidence"]["signer_id"] == people.principal.iin
    state = bytearray(base64.b64decode(target["state"]))
    state[-3] ^= 0x01
    target["state"] = base64.b64encode(bytes(state)).decode()
    export.write_text("".join(json.dumps(x) + "\n" for x in lines))
    found: list[Finding] = []
    result = audit_export(export, people.verifier, on_finding=found.append)
    assert ("bad-seal", str(story.revoked), 1, target["position"]) in {
        (f.kind, f.originator_id, f.version, f.position) for f in found
    }
    assert result.kinds["checkpoint-mismatch"] == 1


def exported(audited: Audited, people: People, tmp_path: Path) -> Path:
    """The story told, every record under a signed checkpoint, and exported to a file."""
    tell(audited, people)
    audited.log.catch_up()
    export = tmp_path / "export.jsonl"
    export_to(export, audited.registry, audited.db, ORIGIN)
    return export


def test_an_export_checked_with_pinned_keys_of_another_service_fails_every_seal(
    audited: Audited, people: People, tmp_path: Path
) -> None:
    export = exported(audited, people, tmp_path)
    foreign = SealKey.generate().public_key
    result = audit_export(export, people.verifier, keys=[foreign])
    assert result.kinds["unknown-key"] == result.records
    assert result.kinds["bad-checkpoint"] == 1
    mine = audit_export(export, people.verifier, keys=[audited.registry.seal_key.public_key])
    assert mine.intact and pem_of(foreign) not in export.read_text()


def test_a_poa_attached_to_a_case_after_it_concluded_is_named(
    audited: Audited, people: People
) -> None:
    story = tell(audited, people)
    case = audited.registry.get_case("CASE-C")
    late = audited.registry.issue(people.issue(case_number="CASE-D")).poa
    case._attach(poa_id=late.id, at=audited.registry.clock())  # a writer that skips the rule
    audited.registry.save(case)
    _, found = verify(audited, people)
    case_id = str(CourtCase.create_id("CASE-C"))
    assert {(f.kind, f.originator_id, f.version) for f in found} == {
        ("attached-after-conclusion", case_id, case.version),
        ("attached-to-another-case", case_id, case.version),
    }
    assert all(str(late.id) in f.detail for f in found)
    assert story.concluded != late.id


def test_a_poa_left_active_when_its_case_concluded_is_named(
    audited: Audited, people: People
) -> None:
    poa = audited.registry.issue(people.issue(case_number="CASE-E")).poa
    case = audited.registry.get_case("CASE-E")
    judgment = case_event(people, JUDGMENT_IN_FORCE, "CASE-E")
    at = audited.registry.clock()
    case._judgment(  # a writer that concludes without ending the case's POAs
        source=judgment.source,
        event_id=judgment.event_id,
        data=judgment.data,
        at=at,
        evidence=judgment.evidence.as_record(),
    )
    case._conclude(at=at)
    audited.registry.save(case)
    _, found = verify(audited, people)
    assert [(f.kind, f.originator_id, f.version) for f in found] == [
        ("poa-outlived-case", str(poa.id), 1)
    ]
    assert isinstance(audited.registry.get_poa(poa.id), PowerOfAttorney)


def test_a_range_of_positions_links_its_first_records_to_the_ones_before_it(
    audited: Audited, people: People
) -> None:
    tell(audited, people)
    audited.log.catch_up()
    last = audited.registry.recorder.max_notification_id()
    assert last is not None
    result, found = verify(audited, people, start=4, stop=last - 2)
    assert found == []
    assert result.records == last - 2 - 4 + 1
    assert result.skipped == ["checkpoints and case conclusions: a position range"]


def test_a_forged_receipt_and_a_foreign_witness_note_are_findings(
    audited: Audited, people: People, tmp_path: Path
) -> None:
    tell(audited, people)
    audited.log.catch_up()
    forged = dict(audited.receipts[0])
    forged["records"] = [{**forged["records"][0], "version": 7}]
    receipts = tmp_path / "receipts.jsonl"
    receipts.write_text(json.dumps({"receipt": forged}) + "\nnot a receipt\n")
    witness = tmp_path / "witness.txt"
    witness.write_text(audited.witness.read_text().replace(ORIGIN, "epoa/elsewhere", 1))
    _, found = verify(audited, people, receipts=receipts, witness=witness)
    assert sorted(f.kind for f in found) == ["bad-receipt", "bad-receipt", "bad-witness"]


def test_the_json_lines_name_the_record_the_position_and_the_damage() -> None:
    out, err = io.StringIO(), io.StringIO()
    with Reporter(True, 10, out=out, err=err) as reporter:
        reporter.finding(Finding("version-gap", "abc", 3, 7, "follows version 1"))
        reporter.finding(Finding("log-truncated", "", 0, None, "2 record(s) are gone"))
        reporter.summary(AuditResult(records=10, findings=2))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {
        "kind": "version-gap",
        "originator_id": "abc",
        "version": 3,
        "position": 7,
        "detail": "follows version 1",
    }
    assert lines[1]["originator_id"] is None and lines[1]["kind"] == "log-truncated"
    assert lines[2]["intact"] is False and lines[2]["records"] == 10


@pytest.mark.postgres
def test_an_audit_of_a_postgres_schema_without_a_store_is_refused(postgres_url: str) -> None:
    server = postgres_url.split("?")[0]
    settings = Settings(database_url=f"{server}?schema=epoa_no_such_schema")
    with pytest.raises(SettingsError, match="no event store at"):
        verify_store(settings)


def test_records_under_no_signed_checkpoint_are_named_in_the_summary(
    audited: Audited, people: People
) -> None:
    """Their checkpoints deleted, the newest records can lose more with no finding: the
    summary says which records no head covers, so the auditor knows to bring a witness."""
    tell(audited, people)
    audited.log.catch_up()
    covered = audited.registry.recorder.max_notification_id()
    audited.registry.issue(people.issue(case_number="CASE-D"))
    held = audited.registry.recorder.max_notification_id()
    result, found = verify(audited, people)
    assert found == [] and result.intact
    assert result.skipped == [
        f"the last {held - covered} record(s), from position {covered + 1}, are under no "
        "signed checkpoint that matches them: whether records after them were removed, only "
        "--witness or --receipts can tell"
    ]
    with audited.db.transaction():
        audited.db.execute("DELETE FROM audit_checkpoints")
    result, _ = verify(audited, people)
    assert result.checkpoints_checked == 0
    assert result.skipped[0].startswith(f"the last {held} record(s), from position 1, are")


class _LostStore:
    """A read-model database that went away after the export began."""

    def __getattr__(self, name: str) -> Any:
        raise StoreUnavailableError("the store went away")


def test_an_export_that_fails_halfway_leaves_the_file_that_was_there(
    audited: Audited, people: People, tmp_path: Path
) -> None:
    export = exported(audited, people, tmp_path)
    before = export.read_bytes()
    lost = cast(Database, _LostStore())
    with pytest.raises(StoreUnavailableError):
        export_to(export, audited.registry, lost, ORIGIN)
    assert export.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if "export" in p.name] == ["export.jsonl"]
