"""May attorney X exercise right R in case C at time T: exact for any T, whatever happened.

Random histories of issues, additions of attorneys, revocations, renunciations and the
court's two facts, in two cases, under a clock that moves by nothing, a microsecond, a
second, hours or days, or lands exactly on a POA's expiry, are driven through the registry's
commands with real CMS signatures. Each command is accepted or refused as the rules say
(a refusal records nothing), and then, for every instant where an answer may change and a
microsecond either side, every attorney, right and case is asked of the three answers the
service gives (the events replayed, for `?at=`; the read model's SQL; the intervals the
authority cache answers from) and compared with `History`, the documented rules over what
was recorded (`tests/support/authority_history.py`).

The run is deterministic (a fixed seed), so CI sees the same histories every time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from domain.errors import (
    CaseConcludedError,
    ConflictError,
    DomainError,
    InvalidInputError,
    PoaNotActiveError,
)
from domain.registry import Registry
from projections.authority import authority_at, held_at, intervals
from projections.runner import ProjectionRunner
from tests.conftest import Clock
from tests.support.authority_history import History, PoaFacts
from tests.support.people import Actor, People, case_event

RIGHTS = ("represent_first_instance", "appeal_judicial_acts", "conclude_settlement")
NOT_GRANTED = "represent_cassation"
KZ = timedelta(hours=5)
EXAMPLES = {"sqlite": 150, "postgres": 15}

Step = tuple[Any, ...]
waits = st.one_of(
    st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(seconds=1)]),
    st.integers(1, 3 * 86_400).map(lambda s: timedelta(seconds=s)),
).map(lambda delta: ("wait", delta))
issues = st.tuples(
    st.just("issue"),
    st.integers(0, 1),
    st.sets(st.integers(0, 2), min_size=1),
    st.sets(st.sampled_from(RIGHTS), min_size=1),
    st.none() | st.integers(-1, 3),
)
clock_steps_back = st.tuples(
    st.just("back"),
    st.sampled_from([timedelta(microseconds=1), timedelta(milliseconds=3), timedelta(seconds=2)]),
)
case_events = st.tuples(st.just("case-event"), st.integers(0, 1), st.booleans())
steps = st.one_of(
    issues,
    waits,
    waits,
    clock_steps_back,
    st.tuples(st.just("to-expiry"), st.integers(0, 7)),
    issues,
    st.tuples(st.just("add"), st.integers(0, 7), st.integers(0, 2)),
    st.tuples(st.just("revoke"), st.integers(0, 7)),
    st.tuples(st.just("renounce"), st.integers(0, 7), st.integers(0, 2)),
    case_events,
    case_events,
)


@pytest.fixture
def runner(registry: Registry, database_url: str) -> Iterator[ProjectionRunner]:
    with ProjectionRunner(registry, database_url) as projection:
        yield projection


def test_every_authority_answer_for_any_moment_follows_the_recorded_history(
    registry: Registry,
    runner: ProjectionRunner,
    people: People,
    clock: Clock,
    database_url: str,
) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"

    @seed(20261207)
    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(issues, st.lists(steps, min_size=3, max_size=24))
    def check(first: Step, then: list[Step]) -> None:
        note(f"steps: {[first, *then]!r}")
        clock.now = datetime.now(UTC)
        driver = Driver(registry, people, clock)
        for step in (first, *then):
            driver.run(step)
        runner.catch_up()
        driver.compare(runner)

    check()


class Driver:
    """Runs the steps on the registry and writes down what it accepted."""

    def __init__(self, registry: Registry, people: People, clock: Clock) -> None:
        self.registry, self.people, self.clock = registry, people, clock
        tag = uuid.uuid4().hex[:8]
        self.cases = (f"PBT-{tag}-A/1", f"PBT-{tag}-B/1")
        self.attorneys = (people.attorney, people.second_attorney, people.third_attorney)
        self.history = History()

    def run(self, step: Step) -> None:
        kind, *args = step
        handlers: dict[str, Callable[..., None]] = {
            "wait": self.wait,
            "back": self.back,
            "to-expiry": self.to_expiry,
            "issue": self.issue,
            "add": self.add,
            "revoke": self.revoke,
            "renounce": self.renounce,
            "case-event": self.case_event,
        }
        handlers[kind](*args)

    def wait(self, delta: timedelta) -> None:
        self.clock.advance(seconds=delta.total_seconds())

    def back(self, delta: timedelta) -> None:
        """The next commands run where the clock reads earlier: another replica's, the
        consumer's host, a clock stepped back."""
        self.clock.now -= delta

    def to_expiry(self, index: int) -> None:
        """Land exactly on a POA's expiry, if one is ahead."""
        ahead = [
            p.expires_at
            for p in self.history.poas
            if p.expires_at is not None and p.expires_at > self.clock.now
        ]
        if ahead:
            self.clock.now = sorted(ahead)[index % len(ahead)]

    def issue(self, case: int, attorneys: set[int], rights: set[str], days: int | None) -> None:
        case_number, at = self.cases[case], self.clock.now
        iins = [self.attorneys[i].iin for i in sorted(attorneys)]
        fields: dict[str, Any] = {"attorneys": [{"iin": iin} for iin in iins]}
        fields["rights"] = sorted(rights)
        valid_until = None
        if days is not None:
            valid_until = ((at + KZ).date()) + timedelta(days=days)
            fields["valid_until"] = valid_until.isoformat()
        evidence = self.people.issue(case_number, **fields)
        expected: type[DomainError] | None = None
        if days is not None and days < 0:
            expected = InvalidInputError
        elif self.history.case(case_number).concluded_at is not None:
            expected = CaseConcludedError
        poa = self.attempt(expected, lambda: self.registry.issue(evidence).poa)
        if poa is not None:
            self.history.issued(str(poa.id), case_number, iins, fields["rights"], valid_until, at)

    def add(self, index: int, attorney: int) -> None:
        poa, actor = self.poa(index), self.attorneys[attorney]
        if poa is None:
            return
        expected = self.refusal(poa)
        if expected is None and actor.iin in poa.named:
            expected = ConflictError
        document = self.act("epoa.add-attorney", poa, self.people.principal)
        evidence = document(attorney={"iin": actor.iin})
        if self.attempt(
            expected, lambda: self.registry.add_attorney(uuid.UUID(poa.poa_id), evidence)
        ):
            self.history.added(poa, actor.iin, poa.recorded_at(self.clock.now))

    def revoke(self, index: int) -> None:
        poa = self.poa(index)
        if poa is None:
            return
        evidence = self.act("epoa.revoke", poa, self.people.principal)()
        if self.attempt(
            self.refusal(poa), lambda: self.registry.revoke(uuid.UUID(poa.poa_id), evidence)
        ):
            self.history.revoked(poa, poa.recorded_at(self.clock.now))

    def renounce(self, index: int, attorney: int) -> None:
        poa, actor = self.poa(index), self.attorneys[attorney]
        if poa is None:
            return
        expected = self.refusal(poa)
        if expected is None and (actor.iin not in poa.named or actor.iin in poa.renounced):
            expected = ConflictError
        evidence = self.act("epoa.renounce", poa, actor)(attorney_iin=actor.iin)
        if self.attempt(expected, lambda: self.registry.renounce(uuid.UUID(poa.poa_id), evidence)):
            self.history.renounced(poa, actor.iin, poa.recorded_at(self.clock.now))

    def case_event(self, case: int, judgment: bool) -> None:
        case_number = self.cases[case]
        kind = JUDGMENT_IN_FORCE if judgment else EXECUTION_DOCUMENTS_ISSUED
        outcome = self.registry.record_case_event(case_event(self.people, kind, case_number))
        assert outcome.applied
        ended = self.history.case_event(case_number, judgment, self.clock.now)
        assert sorted(str(p) for p in outcome.terminated) == sorted(ended)

    def poa(self, index: int) -> PoaFacts | None:
        return self.history.poas[index % len(self.history.poas)] if self.history.poas else None

    def refusal(self, poa: PoaFacts) -> type[DomainError] | None:
        return None if poa.active_at(poa.recorded_at(self.clock.now)) else PoaNotActiveError

    def act(self, kind: str, poa: PoaFacts, actor: Actor) -> Callable[..., Any]:
        return lambda **fields: self.people.act(kind, uuid.UUID(poa.poa_id), actor, **fields)

    def attempt(self, expected: type[DomainError] | None, command: Callable[[], Any]) -> Any:
        """The command's result if the rules accept it; a refusal must be the one the rules
        give, and record nothing."""
        if expected is None:
            return command() or True
        before = self.registry.recorder.max_notification_id()
        with pytest.raises(expected):
            command()
        assert self.registry.recorder.max_notification_id() == before
        return None

    def compare(self, runner: ProjectionRunner) -> None:
        """Every answer at every instant that matters, from each of the three readers."""
        moments = self.history.moments()
        iins = [a.iin for a in self.attorneys] + [self.people.principal.iin]
        for case_number in self.cases:
            for iin in iins:
                for right in (*RIGHTS, NOT_GRANTED):
                    rows = intervals(runner.db, case_number, iin, right)
                    for moment in moments:
                        expected = self.history.authority(case_number, iin, right, moment)
                        where = (case_number, iin, right, moment.isoformat())
                        assert held_at(rows, moment) == expected, where
                        assert (
                            authority_at(runner.db, case_number, iin, right, moment) == expected
                        ), where
                        events = self.registry.authority(case_number, iin, right, moment)
                        assert sorted(str(p) for p in events) == expected, where
