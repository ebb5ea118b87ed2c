"""`/readyz` follows the store: 503 problem+json while PostgreSQL refuses the service's
role, 200 again once it is back, without restarting the app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from epoa.db_admin import init_database
from epoa.settings import Settings
from tests.support.api import api_settings, running
from tests.support.people import People
from tests.support.postgres import DATABASE, SERVER
from tests.support.roles import ServiceRole, service_role

pytestmark = pytest.mark.postgres


@pytest.fixture
def role() -> Iterator[ServiceRole]:
    with service_role() as made:
        init_database(Settings(database_url=made.url, admin_database_url=made.admin_url))
        yield made


def set_login(role: str, allowed: bool) -> None:
    """Allow or refuse the role's logins; refusing also ends the sessions it has."""
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        login = sql.SQL("LOGIN" if allowed else "NOLOGIN")
        conn.execute(sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(role), login))
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )


def wait_for_status(client: TestClient, status: int, within: float = 15.0) -> float:
    began = time.monotonic()
    while True:
        response = client.get("/readyz")
        if response.status_code == status:
            return time.monotonic() - began
        assert time.monotonic() - began < within, f"/readyz stayed {response.status_code}"
        time.sleep(0.2)


def test_readyz_is_503_while_the_store_refuses_the_role_and_200_once_it_is_back(
    role: ServiceRole, tmp_path: Path, people: People
) -> None:
    settings = api_settings(role.url, tmp_path, people)
    with running(settings, run_projections=False) as client:
        assert client.get("/readyz").status_code == 200
        set_login(role.name, allowed=False)
        try:
            waited = wait_for_status(client, 503)
            down = client.get("/readyz")
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["type"].endswith("unavailable")
            assert role.password not in down.text
        finally:
            set_login(role.name, allowed=True)
        assert waited < 5, "the probe must answer quickly during an outage"
        wait_for_status(client, 200)
        assert client.get("/readyz").json()["status"] == "ready"
