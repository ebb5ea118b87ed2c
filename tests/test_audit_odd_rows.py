"""A row edited to hold no value, or a value of another type, is named like any other damage:
the audit reads every column as stored (`epoa/audit_rows.py`), so it goes on past such a row
instead of ending with a traceback, or with 'cannot be read', at the first one."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from epoa.settings import Settings
from epoa.storage import sqlite_path
from tests.support.people import People
from tests.support.postgres import tamper
from tests.test_audit_tamper import named
from tests.test_audit_verify import Audited, Story, opened, tell, verify

EDITS = {
    "state NULL": ("state = NULL", "bad-seal"),
    "topic NULL": ("topic = NULL", "bad-seal"),
    # SQLite stores what it is given: `||` of two blobs is text, here not UTF-8.
    "state as text": ("state = substr(state, 1, 200) || X'58' || substr(state, 202)", "bad-seal"),
}


def edit(url: str, assignment: str, position: int) -> None:
    if urlsplit(url).scheme == "sqlite":
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute(f"UPDATE stored_events SET {assignment} WHERE rowid = ?", (position,))
    else:
        postgres = assignment.replace("X'58'", "'\\x58'::bytea")
        tamper(url, f"UPDATE epoa_events SET {postgres} WHERE notification_id = %s", position)


def position_of(audited: Audited, story: Story) -> int:
    """The position of the revocation of `story.revoked` (its version 2)."""
    stored = audited.registry.recorder.select_notifications(1, 1000)
    [at] = [n.id for n in stored if (n.originator_id, n.originator_version) == (story.revoked, 2)]
    return at


@pytest.mark.parametrize("change", EDITS.values(), ids=EDITS.keys())
def test_a_row_edited_to_hold_no_value_or_another_type_is_a_finding_at_its_position(
    audited: Audited, people: People, story: Story, change: tuple[str, str]
) -> None:
    assignment, kind = change
    at = position_of(audited, story)
    edit(audited.url, assignment, at)

    result, found = verify(audited, people)

    assert (kind, str(story.revoked), 2, at) in named(found)
    assert ("record-changed", str(story.revoked), 2, at) in named(found)
    assert not result.intact
    assert result.records == audited.registry.recorder.max_notification_id()


@pytest.mark.parametrize("spelling", ["upper(originator_id)", "'{' || originator_id || '}'"])
def test_a_stream_id_spelt_otherwise_in_sqlite_is_a_finding_since_its_stream_no_longer_reads_it(
    people: People, tmp_path: Path, spelling: str
) -> None:
    """SQLite holds the stream's id as text and the store finds a stream's rows by that
    exact text: a row whose id is spelt otherwise (upper case, braces) is lost to every read
    of its stream (a revocation so spelt leaves the POA active) though the id means the
    same UUID."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/e.sqlite", var_dir=tmp_path / "var")
    with opened(settings, tmp_path) as audited:
        story = tell(audited, people)
        audited.log.catch_up()
        at = position_of(audited, story)
        with sqlite3.connect(tmp_path / "e.sqlite") as conn:
            conn.execute(
                f"UPDATE stored_events SET originator_id = {spelling} WHERE rowid = ?", (at,)
            )
        assert audited.registry.get_poa(story.revoked).status == "active"

        result, found = verify(audited, people, witness=audited.witness)

    assert ("bad-seal", 2, at) in {(f.kind, f.version, f.position) for f in found}
    assert not result.intact
