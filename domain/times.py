"""How the service writes a moment for its readers: RFC 3339 in UTC, with `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def in_utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive one is taken as UTC (the domain records aware ones)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """`2026-11-25T10:00:00.123456Z`."""
    return in_utc(moment).isoformat().replace("+00:00", "Z")


def utc_text_of(text: str) -> str:
    """A recorded RFC 3339 text (e.g. `...+00:00`) written as `utc_text` writes it."""
    return utc_text(datetime.fromisoformat(text))
