"""Where each record of a stream stands in the global log, on SQLite and PostgreSQL."""

from __future__ import annotations

from domain.registry import Registry
from epoa.read_models import ReadModels
from epoa.settings import Settings
from tests.support.people import People


def test_each_version_of_a_poa_is_found_at_the_position_its_command_recorded(
    registry: Registry, settings: Settings, people: People
) -> None:
    issued = registry.issue(people.issue())
    revoked = registry.revoke(
        issued.poa.id, people.act("epoa.revoke", issued.poa.id, people.principal)
    )
    read_models = ReadModels(settings.database_url)
    try:
        positions = read_models.positions_of(issued.poa.id)
    finally:
        read_models.close()
    assert positions == {1: issued.positions[0], 2: revoked.positions[0]}
