"""Which POAs match these filters? Pages of the `poa_status` read model, oldest first.

Keyset pagination on the position of each POA's `Issued` record in the log: a page never
repeats or skips a POA, even while new ones are issued, which offsets cannot promise, and
neither can `issued_at`: concurrent issues commit in another order than their clocks read,
so a POA may appear after a page that ends with a later `issued_at`. Read models follow the
log in order, so no POA is ever added before a position already listed. The cursor is
opaque to callers.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from domain.errors import InvalidInputError
from domain.power_of_attorney import ACTIVE, EXPIRED, REVOKED, TERMINATED
from projections.db import Database
from projections.poa_status import COLUMN_NAMES, COLUMNS, STATUSES, state_of
from projections.read_model import stamp

MAX_LIMIT = 500


def list_poas(
    db: Database,
    *,
    case_number: str | None = None,
    principal_iin: str | None = None,
    attorney_iin: str | None = None,
    status: str | None = None,
    now: datetime,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, oldest first, and the cursor of the next page (None on the last page)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit: between 1 and {MAX_LIMIT}, got {limit}")
    at = stamp(now)
    where, params = _filters(case_number, principal_iin, attorney_iin, status, at)
    if cursor is not None:
        where.append("issued_position > ?")
        params.append(decode_cursor(cursor))
    sql = f"SELECT {COLUMNS} FROM poa_status"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.fetch(sql + " ORDER BY issued_position LIMIT ?", [*params, limit + 1])
    page = [state_of(row, at) for row in rows[:limit]]
    if len(rows) <= limit:
        return page, None
    return page, encode_cursor(int(rows[limit - 1][COLUMN_NAMES.index("issued_position")]))


def _filters(
    case_number: str | None,
    principal_iin: str | None,
    attorney_iin: str | None,
    status: str | None,
    at: str,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("case_number", case_number), ("principal_iin", principal_iin)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if attorney_iin is not None:  # `active`: the POA's status, and the attorney's own
        acting = " AND a.status = ?" if status == ACTIVE else ""
        where.append(
            f"poa_id IN (SELECT a.poa_id FROM poa_attorneys a WHERE a.attorney_iin = ?{acting})"
        )
        params.extend([attorney_iin, ACTIVE] if acting else [attorney_iin])
    if status == ACTIVE:
        where.append("status = ? AND (expires_at IS NULL OR expires_at > ?)")
        params.extend([ACTIVE, at])
    elif status == EXPIRED:
        where.append("status = ? AND expires_at <= ?")
        params.extend([ACTIVE, at])
    elif status in (REVOKED, TERMINATED):
        where.append("status = ?")
        params.append(status)
    elif status is not None:
        raise InvalidInputError(f"status: one of {', '.join(STATUSES)}, got {status!r}")
    return where, params


def encode_cursor(position: int) -> str:
    raw = json.dumps({"after": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor names; a cursor of another form (one made before lists were
    ordered by position, say) is refused, never read as another place."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInputError("cursor: not a cursor this service returned") from None
    if not isinstance(decoded, dict) or set(decoded) != {"after"}:
        raise InvalidInputError("cursor: not a cursor this service returned")
    position = decoded["after"]
    if type(position) is not int or not 0 < position < 2**63:
        raise InvalidInputError("cursor: not a cursor this service returned")
    return position
