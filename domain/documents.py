"""The person documents of the contract (section 3), checked field by field.

A document that fails here is refused with `validation` before anything is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from domain.court_case import parse_case_number
from domain.errors import InvalidInputError
from domain.iin import is_valid_iin_bin
from domain.power_of_attorney import KZ_TIME, expires_at
from domain.rights import parse_rights
from domain.times import parse_rfc3339, utc_text

MAX_TERM_YEARS = 3
"""Civil Code art. 168: a POA's term is at most three years."""
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_COMMON = {"type", "document_id", "signed_at"}
FIELDS = {
    "epoa.issue": _COMMON | {"case_number", "principal", "attorneys", "rights", "valid_until"},
    "epoa.add-attorney": _COMMON | {"poa_id", "attorney"},
    "epoa.revoke": _COMMON | {"poa_id", "reason"},
    "epoa.renounce": _COMMON | {"poa_id", "attorney_iin"},
}
REQUIRED = {
    "epoa.issue": _COMMON | {"case_number", "principal", "attorneys", "rights"},
    "epoa.add-attorney": _COMMON | {"poa_id", "attorney"},
    "epoa.revoke": _COMMON | {"poa_id"},
    "epoa.renounce": _COMMON | {"poa_id", "attorney_iin"},
}

MAX_NAME = 200
"""The longest name a document may give a person (the directory's are far shorter)."""


def parse_iin(value: object, field: str) -> str:
    if not isinstance(value, str) or not is_valid_iin_bin(value):
        raise InvalidInputError(f"{field}: a valid 12-digit IIN is required, got {value!r}")
    return value


def parse_person(value: object, field: str) -> str:
    if not isinstance(value, dict):
        raise InvalidInputError(f'{field}: an object {{"iin": ...}} is required')
    if unknown := set(value) - {"iin", "name"}:
        raise InvalidInputError(
            f"{field}: unknown field(s) {sorted(unknown)}; a person has `iin` and, "
            "optionally, `name`"
        )
    return parse_iin(value.get("iin"), f"{field}.iin")


def stated_name(value: dict[str, Any], field: str) -> str | None:
    """The name a person object of a document gives, if any: what the signer saw beside the
    IIN (the record takes the person directory's name, `Registry._people`)."""
    name = value.get("name")
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidInputError(
            f"{field}.name: a non-empty string of at most {MAX_NAME} characters, or left out"
        )
    return name


def parse_uuid(value: object, field: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInputError(f"{field}: a UUID is required, got {value!r}") from None


def parse_signed_at(value: object) -> datetime:
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise InvalidInputError(
            f"signed_at: an RFC 3339 time with its zone is required, got {value!r}"
        ) from None


def check_shape(document: dict[str, Any], expected_type: str) -> None:
    kind = document.get("type")
    if kind != expected_type:
        raise InvalidInputError(f"type: {expected_type!r} expected here, got {kind!r}")
    missing = REQUIRED[expected_type] - set(document)
    unknown = set(document) - FIELDS[expected_type]
    if missing:
        raise InvalidInputError(f"missing field(s): {sorted(missing)}")
    if unknown:
        raise InvalidInputError(f"unknown field(s): {sorted(unknown)}")
    parse_uuid(document["document_id"], "document_id")
    parse_signed_at(document["signed_at"])


@dataclass(frozen=True)
class IssueRequest:
    case_number: str
    principal_iin: str
    attorney_iins: list[str]
    rights: list[str]
    valid_until: date | None
    stated_names: dict[str, str]
    """The names the document gives, by IIN (`stated_name`)."""

    @classmethod
    def parse(cls, document: dict[str, Any]) -> IssueRequest:
        check_shape(document, "epoa.issue")
        principal = parse_person(document["principal"], "principal")
        attorneys = document["attorneys"]
        if not isinstance(attorneys, list):
            raise InvalidInputError(
                f'attorneys: a list of {{"iin": ...}} objects is required, got {attorneys!r}'
            )
        if not attorneys:
            raise InvalidInputError("attorneys: at least one attorney is required")
        iins = [parse_person(a, f"attorneys[{i}]") for i, a in enumerate(attorneys)]
        if len(set(iins)) != len(iins):
            raise InvalidInputError("attorneys: an attorney is named twice")
        if principal in iins:
            raise InvalidInputError("attorneys: the principal cannot be their own attorney")
        names: dict[str, str] = {}
        fields = ["principal", *(f"attorneys[{i}]" for i in range(len(iins)))]
        for iin, person, field in zip(
            [principal, *iins], [document["principal"], *attorneys], fields, strict=True
        ):
            if (name := stated_name(person, field)) is not None:
                names[iin] = name
        return cls(
            case_number=parse_case_number(document["case_number"]),
            principal_iin=principal,
            attorney_iins=iins,
            rights=parse_rights(document["rights"]),
            valid_until=_valid_until(document.get("valid_until"), document["signed_at"]),
            stated_names=names,
        )

    def require_unexpired(self, at: datetime) -> None:
        """A POA is never recorded already expired: its last day (in Kazakhstan) must not
        have ended when the registry receives it, whatever the document's `signed_at`."""
        if self.valid_until is None:
            return
        ended = expires_at(self.valid_until)
        if ended <= at:
            raise InvalidInputError(
                f"valid_until: {self.valid_until.isoformat()} ended at {utc_text(ended)}, "
                "before the document was received"
            )


def parse_date(value: object, field: str) -> date:
    """A calendar date written `YYYY-MM-DD`, and only so (Python also reads `20271231` and
    week dates such as `2027-W52-5`, which the contract does not allow)."""
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInputError(f"{field}: a date YYYY-MM-DD is required, got {value!r}")


def _valid_until(value: object, signed_at: object) -> date | None:
    if value is None:
        return None
    until = parse_date(value, "valid_until")
    issued_on = parse_signed_at(signed_at).astimezone(KZ_TIME).date()
    if until < issued_on:
        raise InvalidInputError("valid_until: the date is before the date of issue")
    last = years_after(issued_on, MAX_TERM_YEARS)
    if until > last:
        raise InvalidInputError(
            f"valid_until: a POA's term is at most three years, so {last} at the latest"
        )
    return until


def years_after(day: date, years: int) -> date:
    """The same date `years` later; a 29 February with none that year gives the 28th (a
    term in years ends on the corresponding day of its last year, or its month's last day)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def parse_poa_id(document: dict[str, Any], expected_type: str, poa_id: UUID) -> None:
    """The document binds the POA it acts on: it cannot be replayed onto another one."""
    check_shape(document, expected_type)
    if parse_uuid(document["poa_id"], "poa_id") != poa_id:
        raise InvalidInputError(f"poa_id: the document names {document['poa_id']}, not {poa_id}")


def parse_reason(document: dict[str, Any]) -> str | None:
    reason = document.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise InvalidInputError("reason: a string of at most 1000 characters is expected")
    return reason
