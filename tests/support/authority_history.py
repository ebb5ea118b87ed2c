"""The authority rules as the contract and the README state them, over a recorded history.

The registry's commands are driven by a test; each one it accepted is written down here with
the registry's clock at that moment, and `History.authority` answers "may this attorney
exercise this right in this case at this moment?" from those facts alone, without the
registry's code:

- a POA gives its rights to each attorney from the moment the attorney was named (its issue,
  or the addition of the attorney), inclusive;
- it stops at the first of: the attorney's renunciation, the principal's revocation, the
  case's conclusion (the moment the second of the court's two facts was recorded), and
  19:00Z of `valid_until` (00:00 of the next day in Kazakhstan); each end is exclusive: at
  that very instant the authority is gone;
- a case concluding after a POA's expiry leaves it as it was;
- an act on a POA is recorded at the registry's clock, or at the POA's latest act if the
  clock reads earlier (a process whose clock is behind): a POA's moments never go back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

MICROSECOND = timedelta(microseconds=1)


def kazakhstan_day_ends(valid_until: date) -> datetime:
    """19:00Z of `valid_until`: 00:00+05:00 of the next day."""
    return datetime(valid_until.year, valid_until.month, valid_until.day, 19, tzinfo=UTC)


@dataclass
class PoaFacts:
    poa_id: str
    case_number: str
    rights: frozenset[str]
    issued_at: datetime
    expires_at: datetime | None
    named: dict[str, datetime]
    """Each attorney's IIN and the moment they were named."""
    renounced: dict[str, datetime] = field(default_factory=dict)
    ended_at: datetime | None = None
    """The revocation, the case's conclusion or the last attorney's renunciation."""

    def active_at(self, moment: datetime) -> bool:
        ended = self.ended_at is not None and self.ended_at <= moment
        expired = self.expires_at is not None and self.expires_at <= moment
        return self.issued_at <= moment and not ended and not expired

    def attorney_active_at(self, iin: str, moment: datetime) -> bool:
        since = self.named.get(iin)
        renounced = self.renounced.get(iin)
        return (
            since is not None
            and since <= moment
            and (renounced is None or moment < renounced)
            and self.active_at(moment)
        )

    def recorded_at(self, clock: datetime) -> datetime:
        """When an act on this POA is recorded if the registry's clock reads `clock`."""
        acts = [self.issued_at, *self.named.values(), *self.renounced.values()]
        return max(clock, *acts, *([self.ended_at] if self.ended_at is not None else []))

    def moments(self) -> set[datetime]:
        """Every instant where an answer may change."""
        found = {self.issued_at, *self.named.values(), *self.renounced.values()}
        for end in (self.ended_at, self.expires_at):
            if end is not None:
                found.add(end)
        return found


@dataclass
class CaseFacts:
    judgment: bool = False
    execution_documents: bool = False
    concluded_at: datetime | None = None


@dataclass
class History:
    poas: list[PoaFacts] = field(default_factory=list)
    cases: dict[str, CaseFacts] = field(default_factory=dict)

    def case(self, case_number: str) -> CaseFacts:
        return self.cases.setdefault(case_number, CaseFacts())

    def issued(
        self,
        poa_id: str,
        case_number: str,
        attorneys: list[str],
        rights: list[str],
        valid_until: date | None,
        at: datetime,
    ) -> None:
        expires = kazakhstan_day_ends(valid_until) if valid_until is not None else None
        named = dict.fromkeys(attorneys, at)
        self.poas.append(PoaFacts(poa_id, case_number, frozenset(rights), at, expires, named))
        self.case(case_number)

    def added(self, poa: PoaFacts, iin: str, at: datetime) -> None:
        poa.named[iin] = at

    def revoked(self, poa: PoaFacts, at: datetime) -> None:
        poa.ended_at = at

    def renounced(self, poa: PoaFacts, iin: str, at: datetime) -> None:
        poa.renounced[iin] = at
        if set(poa.renounced) == set(poa.named):
            poa.ended_at = at

    def case_event(self, case_number: str, judgment: bool, at: datetime) -> list[str]:
        """Record a court's fact; the POAs it ends, if it concludes the case."""
        case = self.case(case_number)
        if judgment:
            case.judgment = True
        else:
            case.execution_documents = True
        if case.concluded_at is not None or not (case.judgment and case.execution_documents):
            return []
        case.concluded_at = at
        ended = []
        for poa in self.poas:
            if poa.case_number == case_number and poa.active_at(poa.recorded_at(at)):
                poa.ended_at = poa.recorded_at(at)
                ended.append(poa.poa_id)
        return ended

    def authority(self, case_number: str, iin: str, right: str, moment: datetime) -> list[str]:
        return sorted(
            poa.poa_id
            for poa in self.poas
            if poa.case_number == case_number
            and right in poa.rights
            and poa.attorney_active_at(iin, moment)
        )

    def moments(self) -> list[datetime]:
        """Each instant where an answer may change, a microsecond either side, and a moment
        well before and well after the whole history."""
        edges = set().union(*(poa.moments() for poa in self.poas)) if self.poas else set()
        around = {m + d for m in edges for d in (-MICROSECOND, timedelta(0), MICROSECOND)}
        if edges:
            around |= {min(edges) - timedelta(days=400), max(edges) + timedelta(days=400)}
        return sorted(around)
