"""Processes started together on one PostgreSQL schema (API replicas, the projector, the
members of a consumer group, after a host reboot) all start: each makes the event store's
tables and the read models' if they are missing, one at a time, instead of failing on the
others' half-made types and rows.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.db import connect
from projections.runner import READ_MODELS
from tests.support.people import People

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 4
#: Each child builds the registry, as every `epoa` command does first, then the read models'
#: tables, as `epoa serve` and `epoa project` do next, at the same moment as the others.
CHILD = """
import sys, time
from pathlib import Path
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections.db import connect
from projections.runner import create_read_models
url, var, at = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < at:
    pass
build_registry(Settings(database_url=url, var_dir=Path(var))).close()
tables = connect(url)
create_read_models(tables)
tables.close()
"""


@pytest.mark.parametrize("tables", ["missing", "made"])
def test_processes_started_together_on_one_schema_all_start(
    postgres_url: str, tmp_path: Path, people: People, tables: str
) -> None:
    settings = Settings(database_url=postgres_url, var_dir=tmp_path / "var")
    if tables == "made":
        build_registry(settings).close()
    else:  # the development seal key, made once, as `epoa keys` or a first start would
        sqlite = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/s.db"})
        build_registry(sqlite).close()
    at = time.time() + 3.0  # after every child has imported the service
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, postgres_url, str(settings.var_dir), str(at)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outputs = [child.communicate(timeout=60)[0] for child in children]
    assert [child.returncode for child in children] == [0] * PROCESSES, outputs
    registry = build_registry(settings)
    tables = connect(postgres_url)
    try:
        poa = registry.issue(people.issue()).poa
        assert registry.get_poa(poa.id).status == "active"
        tracked = tables.fetch("SELECT name, position FROM projection_tracking ORDER BY name")
        assert sorted(name for name, _ in tracked) == sorted(m.name for m in READ_MODELS)
        assert {position for _, position in tracked} == {0}
    finally:
        tables.close()
        registry.close()
