"""What someone with the SQLite file could do to stored records: flip a byte, swap two
states, or (holding the seal key too) rewrite a body and seal it again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from uuid import UUID

from domain.seal import GENESIS, SealKey, open_state, seal_state


def flip_poa_record(path: Path, newest: bool) -> int:
    """Flip the last byte of the oldest (or newest) POA record's state; return its rowid."""
    order = "DESC" if newest else "ASC"
    with sqlite3.connect(path) as conn:
        rowid, state = conn.execute(
            "SELECT rowid, state FROM stored_events WHERE topic LIKE '%PowerOfAttorney%' "
            f"ORDER BY rowid {order} LIMIT 1"
        ).fetchone()
        forged = state[:-1] + bytes([state[-1] ^ 1])
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (forged, rowid))
    return int(rowid)


def rowid_of(path: Path, topic: str, nth: int = 1) -> int:
    """The rowid of the `nth` record whose topic ends with `topic`."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT rowid FROM stored_events WHERE topic LIKE ? ORDER BY rowid", (f"%{topic}",)
        ).fetchall()
    return int(rows[nth - 1][0])


def swap_states(path: Path, first: int, second: int) -> None:
    """Give each of two rows the other's state (seal and body), leaving ids and topics."""
    with sqlite3.connect(path) as conn:
        states = dict(
            conn.execute(
                "SELECT rowid, state FROM stored_events WHERE rowid IN (?, ?)", (first, second)
            ).fetchall()
        )
        for target, source in ((first, second), (second, first)):
            conn.execute(
                "UPDATE stored_events SET state = ? WHERE rowid = ?", (states[source], target)
            )


def reseal(store: Path, seal_key: Path, rowid: int, **fields: object) -> None:
    """What an insider holding the seal key can do: rewrite fields of a record's JSON body
    and seal it again, in place, so that seal and chain still verify."""
    with sqlite3.connect(store) as conn:
        row = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid = ?",
            (rowid,),
        ).fetchone()
        originator_id, version, topic, state = row
        opened = open_state(state)
        body = {**json.loads(opened.body), **fields}
        forged, _ = seal_state(
            SealKey.from_pem(seal_key.read_bytes()),
            str(UUID(originator_id)),
            version,
            topic,
            opened.predecessor,
            json.dumps(body, separators=(",", ":")).encode(),
        )
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (forged, rowid))


def reseal_all(store: Path, key: SealKey) -> None:
    """What an insider who replaced the seal key can do: seal every record again with it,
    each stream's chain made anew, and empty the audit log so that it starts over."""
    heads: dict[str, bytes] = {}
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "ORDER BY rowid"
        ).fetchall()
        for rowid, originator_id, version, topic, state in rows:
            stream = str(UUID(originator_id))
            predecessor = heads.get(stream, GENESIS)
            forged, heads[stream] = seal_state(
                key, stream, version, topic, predecessor, open_state(state).body
            )
            conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (forged, rowid))
        for table in ("audit_leaves", "audit_nodes", "audit_checkpoints", "audit_log_state"):
            conn.execute(f"DELETE FROM {table}")
