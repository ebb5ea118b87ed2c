"""How the service writes a moment for its readers: RFC 3339 in UTC, with `Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)")
"""RFC 3339's `date-time` (section 5.6), with `t`, `z` and a space for the `T` as the RFC
allows (signed documents recorded with a space must verify again). Python's `fromisoformat`
alone would also take ISO 8601 forms the RFC does not (`20261125T100000Z`, week dates,
`+0500`, a date alone)."""


def parse_rfc3339(value: object) -> datetime:
    """The aware moment an RFC 3339 `date-time` names; ValueError for anything else."""
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError(f"an RFC 3339 date-time with its zone is required, got {value!r}")
    moment = datetime.fromisoformat(value.upper().replace(" ", "T"))
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} falls outside the years 1 to 9999 in UTC") from None
    return moment


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
