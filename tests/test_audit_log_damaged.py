"""The audit log's own tables damaged (a table dropped, a column, a row holding what no leaf
or head can be) are findings like any other damage: the audit goes on with what can still
be read, instead of saying the store cannot be read (exit 2, an outage) or ending with a
traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization

from epoa.settings import Settings
from epoa.storage import sqlite_path
from tests.support.people import People
from tests.support.postgres import connect
from tests.test_audit_damaged import epoa
from tests.test_audit_verify import Audited, Story, opened, tell, verify

EDITS = {
    "leaves dropped": ("DROP TABLE audit_leaves", "audit-log-edited"),
    "state dropped": ("DROP TABLE audit_log_state", "audit-log-edited"),
    "heads dropped": ("DROP TABLE audit_checkpoints", "audit-log-edited"),
    "hash column dropped": ("ALTER TABLE audit_leaves DROP COLUMN record_hash", "audit-log-edited"),
    "hash not hex": (
        "UPDATE audit_leaves SET record_hash = 'zz' WHERE leaf_index = 3",
        "audit-log-edited",
    ),
    "root not hex": ("UPDATE audit_checkpoints SET root_hash = 'zz'", "bad-checkpoint"),
}


def edit(url: str, statement: str) -> None:
    if urlsplit(url).scheme == "sqlite":
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute(statement)
    else:
        with connect(url) as conn:
            conn.execute(statement)  # type: ignore[arg-type]


@pytest.mark.parametrize("change", EDITS.values(), ids=EDITS.keys())
def test_the_audit_logs_tables_edited_into_what_no_log_holds_are_a_finding(
    audited: Audited, people: People, story: Story, change: tuple[str, str]
) -> None:
    statement, kind = change
    edit(audited.url, statement)

    result, found = verify(audited, people, witness=audited.witness)

    assert kind in {f.kind for f in found}
    assert not result.intact
    assert result.records == audited.registry.recorder.max_notification_id()


def test_the_command_line_names_a_dropped_audit_table_and_exits_1(
    people: People, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    settings = Settings(database_url=f"sqlite:///{var}/epoa.sqlite", var_dir=var)
    with opened(settings, tmp_path) as audited:
        tell(audited, people)
        audited.log.catch_up()
    ca = tmp_path / "ca.pem"
    ca.write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
    edit(settings.database_url, "DROP TABLE audit_leaves")

    run = epoa(tmp_path, "audit", "verify", trusted_ca=str(ca))

    assert run.returncode == 1, run.stdout + run.stderr
    assert "audit-log-edited: the log: the audit log's table audit_leaves is gone" in run.stdout
    assert "DAMAGED" in run.stdout
