"""The fixtures of the audit tests that damage a store: a store with its audit log
(`audited`) and a history in it, every record covered by a signed checkpoint (`story`).
Registered for every module by `tests/conftest.py` (`pytest_plugins`); a module may
define its own, as `tests/test_audit_verify.py` does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from epoa.settings import Settings
from tests.support.people import People
from tests.test_audit_verify import Audited, Story, opened, tell


@pytest.fixture
def audited(settings: Settings, tmp_path: Path) -> Iterator[Audited]:
    with opened(settings, tmp_path) as audited:
        yield audited


@pytest.fixture
def story(audited: Audited, people: People) -> Story:
    """The history, every record of it covered by a signed checkpoint."""
    told = tell(audited, people)
    audited.log.catch_up()
    return told
