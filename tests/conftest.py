"""Fixtures: real storage (SQLite and PostgreSQL), real keys and real CMS signatures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from tests.support.api import api_settings, running
from tests.support.kafka_fixtures import (  # noqa: F401
    fresh_group_id,
    kafka_broker,
    kafka_topic,
    own_broker,
)
from tests.support.people import People, make_people
from tests.support.postgres import fresh_schema


class Clock:
    """The registry's clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


pytest_plugins = ["tests.support.audit_story"]  # the audit tests' `audited` and `story`


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@pytest.fixture
def pg_registry(postgres_url: str, tmp_path: Path) -> Iterator[Registry]:
    """A registry on a fresh PostgreSQL schema, for the tests that are about PostgreSQL."""
    app = build_registry(Settings(database_url=postgres_url, var_dir=tmp_path))
    yield app
    app.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/epoa.sqlite"
    else:
        with fresh_schema() as url:
            yield url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, var_dir=tmp_path / "var")


@pytest.fixture
def registry(settings: Settings, clock: Clock) -> Iterator[Registry]:
    app = build_registry(settings, clock=clock)
    yield app
    app.close()


@pytest.fixture(scope="session")
def people() -> People:
    return make_people()


@pytest.fixture
def client(postgres_url: str, tmp_path: Path, people: People) -> Iterator[TestClient]:
    """The whole API on a fresh PostgreSQL schema, projections and checkpoints in-process;
    a test file that needs the app built otherwise defines its own `client`."""
    with running(api_settings(postgres_url, tmp_path, people)) as client:
        yield client
