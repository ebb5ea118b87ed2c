"""How the service writes a moment for its readers: RFC 3339 in UTC, with `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_text(moment: datetime) -> str:
    """`2026-11-25T10:00:00.123456Z`; a naive moment is taken as UTC (the domain records
    aware ones)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc_text_of(text: str) -> str:
    """A recorded RFC 3339 text (e.g. `...+00:00`) written as `utc_text` writes it."""
    return utc_text(datetime.fromisoformat(text))
