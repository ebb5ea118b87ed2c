"""What someone with the SQLite file could do to a stored record: flip one of its bytes."""

from __future__ import annotations

import sqlite3
from pathlib import Path


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
