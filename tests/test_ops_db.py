"""`epoa db init` on a real PostgreSQL: the service role issues POAs through the API, and
the database itself refuses every change of an event row and every attempt to remove the
guard, whatever the service's code does."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from epoa.db_admin import init_database, store_access
from epoa.settings import Settings, with_password
from epoa.storage import EVENTS_TABLE, schema_of
from epoa.wiring import SettingsError, build_registry
from tests.support.api import api_settings, auth, body, running
from tests.support.people import People
from tests.support.postgres import DATABASE, SERVER
from tests.support.roles import ServiceRole, drop_role, service_role

pytestmark = pytest.mark.postgres


@pytest.fixture
def role() -> Iterator[ServiceRole]:
    with service_role() as made:
        init_database(Settings(database_url=made.url, admin_database_url=made.admin_url))
        yield made


def as_role(role: ServiceRole) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(role.url.partition("?")[0], autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_of(role.url))))
    return conn


def issue_one(role: ServiceRole, tmp_path: Path, people: People) -> str:
    with running(api_settings(role.url, tmp_path, people)) as client:
        created = client.post(
            "/v1/powers-of-attorney", json=body(people.issue()), headers=auth("portal")
        )
        assert created.status_code == 201, created.text
        poa_id = str(created.json()["poa_id"])
        read = client.get(f"/v1/powers-of-attorney/{poa_id}", headers=auth("portal"))
        assert read.status_code == 200, read.text
    return poa_id


def test_the_service_role_issues_and_reads_powers_of_attorney_through_the_api(
    role: ServiceRole, tmp_path: Path, people: People
) -> None:
    issue_one(role, tmp_path, people)
    with as_role(role) as conn:
        owner = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename = %s",
            (EVENTS_TABLE,),
        ).fetchone()
        events = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
        compressed = conn.execute(
            "SELECT DISTINCT pg_column_compression(state) FROM "
            f"{EVENTS_TABLE} WHERE length(state) > 2500"  # short states stay as they are
        ).fetchall()
    assert owner is not None and owner[0] != role.name
    assert events is not None and int(str(events[0])) >= 2
    assert compressed == [("lz4",)]  # set up by `epoa db init`, as the owner


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {EVENTS_TABLE} SET topic = topic",
        f"DELETE FROM {EVENTS_TABLE}",
        f"TRUNCATE {EVENTS_TABLE}",
        f"DROP TABLE {EVENTS_TABLE}",
        f"ALTER TABLE {EVENTS_TABLE} DISABLE TRIGGER epoa_append_only_rows",
        f"ALTER TABLE {EVENTS_TABLE} DISABLE TRIGGER ALL",
        f"DROP TRIGGER epoa_append_only_rows ON {EVENTS_TABLE}",
        f"DROP TRIGGER epoa_append_only_truncate ON {EVENTS_TABLE}",
        f"ALTER TABLE {EVENTS_TABLE} RENAME TO old_events",
        f"ALTER TABLE {EVENTS_TABLE} OWNER TO CURRENT_USER",
        f"CREATE RULE keep AS ON UPDATE TO {EVENTS_TABLE} DO INSTEAD NOTHING",
        "DROP FUNCTION epoa_refuse_change() CASCADE",
        "SET session_replication_role = replica",
    ],
)
def test_the_service_role_cannot_change_event_rows_nor_remove_the_guard(
    role: ServiceRole, tmp_path: Path, people: People, statement: str
) -> None:
    issue_one(role, tmp_path, people)
    with as_role(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement.encode())


def test_the_service_role_may_rebuild_the_read_models_it_owns(
    role: ServiceRole, tmp_path: Path, people: People
) -> None:
    issue_one(role, tmp_path, people)
    from projections.runner import ProjectionRunner

    settings = Settings(database_url=role.url, var_dir=tmp_path / "var")
    registry = build_registry(settings)
    try:
        with ProjectionRunner(registry, role.url) as runner:
            assert runner.rebuild() >= 2
    finally:
        registry.close()


def test_a_rebuild_with_nowhere_to_build_says_to_run_db_init_and_changes_nothing(
    role: ServiceRole, tmp_path: Path, people: People
) -> None:
    """A schema set up before rebuilds were built beside the live tables has no rebuild
    schema, and its service role may not make one."""
    from projections.rebuild import RebuildSpaceError, shadow_schema
    from projections.runner import ProjectionRunner

    issue_one(role, tmp_path, people)
    with psycopg.connect(role.admin_url.partition("?")[0], autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(shadow_schema(role.url)))
        )
    registry = build_registry(Settings(database_url=role.url, var_dir=tmp_path / "var"))
    try:
        with ProjectionRunner(registry, role.url) as runner:
            before = runner.db.fetch("SELECT poa_id, status FROM poa_status")
            with pytest.raises(RebuildSpaceError, match="epoa db init"):
                runner.rebuild()
            assert runner.db.fetch("SELECT poa_id, status FROM poa_status") == before
        init_database(Settings(database_url=role.url, admin_database_url=role.admin_url))
        with ProjectionRunner(registry, role.url) as runner:
            assert runner.rebuild() >= 2
    finally:
        registry.close()


def test_an_audit_by_a_role_the_store_refuses_is_no_verdict(
    role: ServiceRole, tmp_path: Path, people: People
) -> None:
    """A restore with `pg_restore --no-privileges` leaves the service role no grant until
    `epoa db init` runs again: the audit and every process say to run it (exit 2), never
    that the history is damaged (exit 1) nor a traceback."""
    from epoa.audit_commands import verify_store

    issue_one(role, tmp_path, people)
    events = sql.Identifier(schema_of(role.url), EVENTS_TABLE)
    with psycopg.connect(role.admin_url.partition("?")[0], autocommit=True) as admin:
        admin.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(events, sql.Identifier(role.name)))
    settings = Settings(database_url=role.url, var_dir=tmp_path / "var")
    with pytest.raises(SettingsError, match=r"may not read epoa_events .*epoa db init"):
        verify_store(settings)
    with pytest.raises(SettingsError, match=r"may not read epoa_events .*epoa db init"):
        build_registry(settings)  # as `epoa serve` and the workers start
    init_database(Settings(database_url=role.url, admin_database_url=role.admin_url))
    assert verify_store(settings) == 0


def test_db_init_run_again_keeps_the_store_and_the_guard(
    role: ServiceRole, tmp_path: Path, people: People
) -> None:
    issue_one(role, tmp_path, people)
    report = init_database(Settings(database_url=role.url, admin_database_url=role.admin_url))
    assert "poa_status" in report.owned_by_role
    access = store_access(role.url)
    assert access is not None and access.managed and access.guards == 2
    issue_one(role, tmp_path, people)


def test_a_managed_schema_whose_triggers_were_removed_refuses_to_start(
    role: ServiceRole, tmp_path: Path
) -> None:
    with psycopg.connect(role.admin_url.partition("?")[0], autocommit=True) as conn:
        table = sql.Identifier(schema_of(role.url), EVENTS_TABLE)
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER epoa_append_only_rows").format(table))
    settings = Settings(database_url=role.url, var_dir=tmp_path / "var")
    with pytest.raises(SettingsError, match=r"append-only triggers .* db init"):
        build_registry(settings)


def test_a_role_that_may_not_create_the_store_is_told_to_run_db_init(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with service_role() as bare:
        with psycopg.connect(bare.admin_url.partition("?")[0], autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(bare.name)))
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(schema_of(bare.url)), sql.Identifier(bare.name)
                )
            )
        settings = Settings(database_url=bare.url, var_dir=tmp_path / "var")
        with pytest.raises(SettingsError, match=r"may not create one; run `epoa db init`"):
            build_registry(settings)
        # In production it is not warned of as an owner of the table it may not even make.
        caplog.clear()
        with caplog.at_level("WARNING", logger="epoa"), pytest.raises(SettingsError):
            build_registry(settings.model_copy(update={"env": "production"}))
        assert "owns the event table" not in caplog.text, caplog.text


def test_db_init_refuses_to_make_the_owner_the_service_role(tmp_path: Path) -> None:
    with service_role() as made:
        same = Settings(database_url=made.admin_url, admin_database_url=made.admin_url)
        with pytest.raises(SettingsError, match="must not be the owner"):
            init_database(same)


def test_db_init_given_the_service_role_as_owner_refuses_it_before_changing_anything(
    tmp_path: Path, role: ServiceRole
) -> None:
    """The service role may not create schemas: it is told it is no owner, exit 2, not
    that the store refused a permission."""
    from tests.test_ops_settings import run_epoa

    env = {"EPOA_DATABASE_URL": role.url, "EPOA_ADMIN_DATABASE_URL": role.url}
    done = run_epoa("db", "init", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "epoa: bad settings: the service role must not be the owner: use another role"
    )


def test_db_init_needs_the_owner_url() -> None:
    with pytest.raises(SettingsError, match="EPOA_ADMIN_DATABASE_URL is required"):
        init_database(Settings(database_url="postgresql://svc@127.0.0.1/epoa"))


@contextmanager
def managed_owner(made: ServiceRole) -> Iterator[str]:
    """An owner as a managed PostgreSQL gives one: no superuser, CREATEROLE, owner of the
    schema; its URL (with the schema)."""
    name, password = f"{made.name}_owner", "owner-password"
    parts = urlsplit(made.url)
    host = parts.netloc.rsplit("@", 1)[-1]
    database = parts.path.strip("/")
    with psycopg.connect(made.admin_url.partition("?")[0], autocommit=True) as conn:
        owner = sql.Identifier(name)
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                owner, sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(database), owner
            )
        )
        conn.execute(
            sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(
                sql.Identifier(schema_of(made.url)), owner
            )
        )
    try:
        yield f"postgresql://{name}:{password}@{host}/{database}?{parts.query}"
    finally:
        drop_role(made.name)
        with psycopg.connect(made.admin_url.partition("?")[0], autocommit=True) as conn:
            owner = sql.Identifier(name)
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(owner))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(owner))
            conn.execute(sql.SQL("DROP ROLE {}").format(owner))


def test_db_init_by_an_owner_that_is_no_superuser_runs_again_and_again(
    tmp_path: Path, people: People
) -> None:
    with service_role() as made, managed_owner(made) as owner_url:
        settings = Settings(database_url=made.url, admin_database_url=owner_url)
        first = init_database(settings)
        assert "poa_status" in first.owned_by_role
        issue_one(made, tmp_path, people)
        again = init_database(settings)
        assert set(first.owned_by_role) <= set(again.owned_by_role)
        issue_one(made, tmp_path, people)
        with psycopg.connect(made.admin_url.partition("?")[0]) as conn:
            powers = conn.execute(
                "SELECT rolcanlogin, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s",
                (made.name,),
            ).fetchone()
        assert powers == (True, False, False)


def test_db_init_by_an_owner_that_may_not_make_roles_says_so_and_makes_no_table(
    tmp_path: Path,
) -> None:
    with service_role() as made, managed_owner(made) as owner_url:
        with psycopg.connect(made.admin_url.partition("?")[0], autocommit=True) as conn:
            owner = owner_url.split("//", 1)[1].split(":", 1)[0]
            conn.execute(sql.SQL("ALTER ROLE {} NOCREATEROLE").format(sql.Identifier(owner)))
        settings = Settings(database_url=made.url, admin_database_url=owner_url)
        with pytest.raises(SettingsError, match="may not create or change the role"):
            init_database(settings)
        assert store_access(made.admin_url) is not None
        assert not store_access(made.admin_url).table_exists  # type: ignore[union-attr]


def test_db_init_against_a_server_that_does_not_answer_is_one_line_and_exit_1(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env |= {
        "EPOA_DATABASE_URL": "postgresql://epoa_service@127.0.0.1:1/epoa",
        "EPOA_ADMIN_DATABASE_URL": "postgresql://epoa_owner@127.0.0.1:1/epoa",
    }
    epoa = str(Path(sys.executable).with_name("epoa"))
    done = subprocess.run(
        [epoa, "db", "init"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("epoa: the store refused: ") and "port 1 failed" in last


def scram_matches(verifier: str, password: str) -> bool:
    """Whether PostgreSQL's SCRAM-SHA-256 verifier (`pg_authid.rolpassword`) is of `password`."""
    method, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_salt.partition(":")
    stored_key = keys.partition(":")[0]
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(
        stored_key
    )


def test_db_init_gives_the_role_the_password_file_as_it_is(tmp_path: Path) -> None:
    """A password with characters a URL must encode (`openssl rand -base64` makes `+/=`)
    was set percent-encoded, so the service could not log in with the file's password."""
    secret = "p@ss:w/rd%x+y=="
    password_file = tmp_path / "db-service-password"
    password_file.write_text(secret + "\n")
    with service_role() as made:
        bare = made.url.replace(f":{made.password}@", "@")
        url = with_password(bare, password_file, "EPOA_DATABASE_PASSWORD_FILE")
        init_database(Settings(database_url=url, admin_database_url=made.admin_url))
        with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
            row = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (made.name,)
            ).fetchone()
        assert row is not None and scram_matches(str(row[0]), secret)


def test_db_init_run_again_with_a_new_password_file_rotates_the_roles_password(
    tmp_path: Path,
) -> None:
    """The runbook's rotation: a new password in the service role's file, then `epoa db
    init` again: the role takes the new password and no longer has the old one."""
    password_file = tmp_path / "db-service-password"
    with service_role() as made:
        bare = made.url.replace(f":{made.password}@", "@")
        for password in ("first-password", "second-password"):
            password_file.write_text(password + "\n")
            url = with_password(bare, password_file, "EPOA_DATABASE_PASSWORD_FILE")
            init_database(Settings(database_url=url, admin_database_url=made.admin_url))
        with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
            row = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (made.name,)
            ).fetchone()
        assert row is not None and scram_matches(str(row[0]), "second-password")
        assert not scram_matches(str(row[0]), "first-password")


def test_in_production_a_process_connected_as_the_owner_is_warned_of(
    role: ServiceRole, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The owner (here a superuser) could drop the triggers that keep events append-only:
    production says so at start; the service role `epoa db init` made is not warned of."""
    from domain.seal import SealKey
    from epoa.db_admin import OWNER_WARNING

    key = tmp_path / "seal-key.pem"
    key.write_bytes(SealKey.generate().to_pem())
    for url, warned in ((role.url, False), (role.admin_url, True)):
        caplog.clear()
        settings = Settings(env="production", database_url=url, seal_key=key, var_dir=tmp_path)
        with caplog.at_level("WARNING", logger="epoa"):
            build_registry(settings).close()
        assert (OWNER_WARNING in caplog.text) is warned, (url, caplog.text)


def test_a_person_import_the_store_refuses_says_to_run_db_init_and_imports_after_it(
    role: ServiceRole,
    tmp_path: Path,
    people: People,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A restore with `pg_restore --no-owner` leaves the read models to the restoring role:
    the import says to run `epoa db init`, never only "permission denied"."""
    from epoa.cli import main

    monkeypatch.setenv("EPOA_DATABASE_URL", role.url)
    monkeypatch.setenv("EPOA_VAR_DIR", str(tmp_path / "var"))
    directory = tmp_path / "persons.csv"
    directory.write_text(f"iin,full_name,birth_date\n{people.principal.iin},A Person,1990-01-01\n")
    assert main(["persons", "import", str(directory)]) == 0
    persons = sql.Identifier(schema_of(role.url), "persons")
    with psycopg.connect(role.admin_url.partition("?")[0], autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER TABLE {} OWNER TO CURRENT_USER").format(persons))
    capsys.readouterr()
    assert main(["persons", "import", str(directory)]) == 1
    refused = capsys.readouterr().err
    assert "permission denied" in refused and "run `epoa db init`" in refused, refused
    init_database(Settings(database_url=role.url, admin_database_url=role.admin_url))
    assert main(["persons", "import", str(directory)]) == 0


def test_a_start_up_the_roles_connection_limit_ends_after_the_banner_is_one_line_and_exit_3(
    role: ServiceRole, tmp_path: Path
) -> None:
    """The checks before the banner take one connection at a time; the app's pools, opened
    after it, met the role's limit, and uvicorn logged some sixty lines of traceback."""
    import os
    import socket
    import subprocess
    import sys

    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 2").format(sql.Identifier(role.name)))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env["EPOA_DATABASE_URL"] = role.url
    epoa = str(Path(sys.executable).with_name("epoa"))
    done = subprocess.run(
        [epoa, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 2, done.stderr
    assert errors[0].endswith(f'too many connections for role "{role.name}"'), errors[0]
    assert " ERROR epoa the store refused: OperationalError: " in errors[0]
    assert errors[1].endswith("Application startup failed. Exiting.")
