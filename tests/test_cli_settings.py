"""Unfit settings end every command with one line, `epoa: bad settings: ...`, exit 2, in
development as in production, before any banner, server or file: no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from epoa.settings import Settings
from epoa.storage import psycopg_conninfo
from tests.support.pki import complete_id
from tests.test_ops_settings import run_epoa


@pytest.mark.parametrize(
    ("content", "fault"),
    [
        ("iin,role\n", "cannot read it as JSON"),
        ('["a"]', "a JSON object mapping API key to role"),
        ('{"k": 5}', "a JSON object mapping API key to role"),
        ('{"abcdefghijklmnopqrstuvwxyz012345": "superuser"}', "unknown role(s) ['superuser']"),
        ("{}", "it holds no key, so every request would be refused"),
        ('{" ": "admin"}', "a key is empty or blank"),
        ('{"good-key": "court", "trailing-space ": "portal"}', "key #2 has white space at an"),
        ('{"\\tleading-tab": "portal"}', "key #1 has white space at an end"),
        ('{"\u043a\u043b\u044e\u0447-portal": "portal"}', "other than printable ASCII"),
        ('{"line\\nbreak": "auditor"}', "other than printable ASCII"),
    ],
)
def test_a_bad_api_keys_file_stops_serve_with_one_line_and_no_banner(
    tmp_path: Path, content: str, fault: str
) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(content)
    done = run_epoa("serve", "--port", "1", env={"EPOA_API_KEYS": str(keys)}, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"epoa: bad settings: EPOA_API_KEYS={keys}: "), done.stderr
    assert fault in done.stderr
    assert "Traceback" not in done.stderr and "API docs" not in done.stdout


def test_an_api_key_given_twice_stops_serve_naming_the_entries_not_the_key(
    tmp_path: Path,
) -> None:
    key, other = "abcdefghijklmnopqrstuvwxyz012345", "zyxwvutsrqponmlkjihgfedcba543210"
    keys = tmp_path / "keys.json"
    keys.write_text(f'{{"{key}": "portal", "{other}": "court", "{key}": "admin"}}')
    done = run_epoa("serve", "--port", "1", env={"EPOA_API_KEYS": str(keys)}, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"epoa: bad settings: EPOA_API_KEYS={keys}: key #3 repeats key #1: each key has one "
        "role; give it once"
    )
    assert "API docs" not in done.stdout


def test_commands_that_serve_no_api_neither_read_nor_make_api_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text("not json")
    done = run_epoa("audit", "verify", env={"EPOA_API_KEYS": str(keys)}, cwd=tmp_path)
    assert "EPOA_API_KEYS" not in done.stderr, done.stderr
    assert done.returncode == 2 and "no event store" in done.stderr
    run_epoa("audit", "verify", env={}, cwd=tmp_path)
    assert not (tmp_path / "var" / "api-keys.json").exists()


def test_court_bins_are_read_comma_separated_and_a_bad_one_exits_2_naming_it(
    tmp_path: Path,
) -> None:
    court, other = complete_id("98014000001"), complete_id("12044000123")
    assert Settings(court_bins=f"{court}, {other}").court_bins == [court, other]  # type: ignore[arg-type]
    done = run_epoa("audit", "verify", env={"EPOA_COURT_BINS": f"{court},123"}, cwd=tmp_path)
    assert done.returncode == 2
    assert "EPOA_COURT_BINS: not BINs" in done.stderr and "'123'" in done.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EPOA_CASE_EVENTS_TOPIC", ""),
        ("EPOA_CASE_EVENTS_TOPIC", "bad topic!"),
        ("EPOA_CASE_EVENTS_DLQ_TOPIC", "dead/letters"),
        ("EPOA_KAFKA_BOOTSTRAP", "not a host:port:x"),
        ("EPOA_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:99999"),
        ("EPOA_KAFKA_BOOTSTRAP", "kafka-1:0"),
    ],
)
def test_a_topic_or_broker_address_kafka_would_refuse_exits_2_naming_it(
    tmp_path: Path, name: str, value: str
) -> None:
    env = {"EPOA_KAFKA_BOOTSTRAP": "127.0.0.1:1", name: value}
    done = run_epoa("consume", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"epoa: bad settings: {name}: " in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "topics",
    [
        {"EPOA_CASE_EVENTS_DLQ_TOPIC": "court.case-events"},
        {"EPOA_CASE_EVENTS_TOPIC": "courts.events", "EPOA_CASE_EVENTS_DLQ_TOPIC": "courts.events"},
    ],
)
def test_dead_letters_sent_to_the_case_events_topic_itself_exit_2_naming_both(
    tmp_path: Path, topics: dict[str, str]
) -> None:
    """Each dead letter would be read again as a case event and dead-lettered again, without
    end: the topic grows by thousands of copies a second while no one is told."""
    done = run_epoa("consume", env={"EPOA_KAFKA_BOOTSTRAP": "127.0.0.1:1", **topics}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("epoa: bad settings: EPOA_CASE_EVENTS_DLQ_TOPIC"), done.stderr
    assert "EPOA_CASE_EVENTS_TOPIC" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "url",
    [
        "garbage",
        "mysql://epoa:s3cret-pw@db/epoa",
        "sqlite://relative",
        "postgresql:x",
        "postgresql:epoa:s3cret-pw@db/epoa",
        "host=db user=epoa password=s3cret-pw",
        "postgresql://epoa:s3cret-pw@db:port/epoa",
    ],
)
def test_a_database_url_of_no_store_there_is_exits_2_without_its_password(
    tmp_path: Path, url: str
) -> None:
    for command in (("audit", "verify"), ("project", "--once"), ("serve",)):
        done = run_epoa(*command, env={"EPOA_DATABASE_URL": url}, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("epoa: bad settings: EPOA_DATABASE_URL: "), done.stderr
        assert "must be sqlite:///PATH or postgresql://" in done.stderr
        assert "s3cret-pw" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("shema=tenant_a", "unknown parameter(s) ['shema']"),
        ("schema=a&schema=b", "['schema'] given more than once"),
        ("schema=", "schema must be a plain name"),
        ("schema=tenant-b", "schema must be a plain name"),
        ("pool_size=abc", "pool_size must be a whole number"),
        ("pool_size=0", "pool_size must be a whole number"),
    ],
)
def test_a_database_url_with_a_parameter_it_cannot_take_exits_2_naming_it(
    tmp_path: Path, query: str, words: str
) -> None:
    """`?shema=` was ignored: the service ran on the schema `public`, another store."""
    url = f"postgresql://epoa:s3cret-pw@127.0.0.1:1/epoa?{query}"
    done = run_epoa("project", "--once", env={"EPOA_DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("epoa: bad settings: EPOA_DATABASE_URL: "), done.stderr
    assert words in done.stderr and "s3cret-pw" not in done.stderr, done.stderr
    assert "tenant_a" not in done.stderr and "abc" not in done.stderr


@pytest.mark.parametrize("url", ["sqlite:var/epoa.sqlite", "SQLITE:///var/epoa.sqlite"])
def test_the_sqlite_urls_that_name_a_file_are_still_stores(tmp_path: Path, url: str) -> None:
    done = run_epoa("project", "--once", env={"EPOA_DATABASE_URL": url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "var" / "epoa.sqlite").exists()


@pytest.mark.postgres
def test_a_postgresql_url_without_user_or_host_reaches_postgres_on_127_0_0_1(
    tmp_path: Path, postgres_url: str
) -> None:
    hostless = postgres_url.replace("postgresql://postgres@127.0.0.1:5432/", "postgres:///")
    assert hostless != postgres_url
    done = run_epoa("project", "--once", env={"EPOA_DATABASE_URL": hostless}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "applied 0 events" in done.stdout


def test_an_unreadable_database_password_file_is_named_by_its_variable(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret"
    done = run_epoa(
        "audit", "verify", env={"EPOA_DATABASE_PASSWORD_FILE": str(missing)}, cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"epoa: bad settings: EPOA_DATABASE_PASSWORD_FILE={missing}: cannot read it"
    ), done.stderr


def test_db_init_with_a_password_file_but_no_service_role_refuses_to_pick_one(
    tmp_path: Path,
) -> None:
    """The password file must not make `postgres` the role `epoa db init` strips of its
    powers: a URL naming no role is refused, as it is without a password file."""
    secret = tmp_path / "password"
    secret.write_text("service-password\n")
    env = {
        "EPOA_DATABASE_URL": "postgresql://127.0.0.1:1/epoa",
        "EPOA_DATABASE_PASSWORD_FILE": str(secret),
        "EPOA_ADMIN_DATABASE_URL": "postgresql://epoa_owner@127.0.0.1:1/epoa",
    }
    done = run_epoa("db", "init", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "epoa: bad settings: EPOA_DATABASE_URL must name the service role: postgresql://ROLE@..."
    )


def test_a_password_file_for_a_url_naming_no_user_still_reaches_the_default_user(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "password"
    secret.write_text("pw\n")
    settings = Settings(
        database_url="postgresql://db.internal:5432/epoa", database_password_file=secret
    )
    assert settings.database_url == "postgresql://:pw@db.internal:5432/epoa"
    assert (
        psycopg_conninfo(settings.database_url) == "postgresql://postgres:pw@db.internal:5432/epoa"
    )


def test_an_empty_path_setting_is_unset_not_the_current_directory(tmp_path: Path) -> None:
    empty = ("API_KEYS", "TRUSTED_CA", "SEAL_KEY", "CRL_FILES", "CHECKPOINT_FILE", "VAR_DIR")
    env = {"EPOA_ENV": "production", **{f"EPOA_{name}": "" for name in empty}}
    done = run_epoa("serve", "--port", "1", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    for name in ("API_KEYS", "TRUSTED_CA", "SEAL_KEY"):
        assert f"EPOA_{name} is required" in done.stderr, done.stderr
    assert "=." not in done.stderr and "Is a directory" not in done.stderr


def test_an_empty_password_file_or_owner_url_is_unset(tmp_path: Path) -> None:
    env = {
        "EPOA_DATABASE_URL": "postgresql://epoa_service@127.0.0.1:1/epoa",
        "EPOA_DATABASE_PASSWORD_FILE": "",
        "EPOA_ADMIN_DATABASE_URL": "",
        "EPOA_ADMIN_DATABASE_PASSWORD_FILE": "",
    }
    done = run_epoa("db", "init", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("epoa: bad settings: EPOA_ADMIN_DATABASE_URL is required")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EPOA_CLOCK_SKEW_SECONDS", "-100"),
        ("EPOA_READ_WAIT_SECONDS", "-5"),
        ("EPOA_CHECKPOINT_EVERY_RECORDS", "0"),
        ("EPOA_CHECKPOINT_EVERY_SECONDS", "-1"),
        ("EPOA_CHECKPOINT_EVERY_SECONDS", "inf"),
        ("EPOA_CHECKPOINT_EVERY_SECONDS", "1e308"),
        ("EPOA_READ_WAIT_SECONDS", "inf"),
        ("EPOA_CONSUMER_SESSION_TIMEOUT_MS", "0"),
        ("EPOA_CONSUMER_METRICS_PORT", "70000"),
    ],
)
def test_a_number_no_process_could_work_with_is_a_bad_setting_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    """A negative clock skew refused every correctly signed document as signed in the
    future, blaming the signer."""
    done = run_epoa("project", "--once", env={variable: value}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"epoa: bad settings: {variable}: "), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [("project", "--once"), ("project",), ("serve", "--port", "1")])
def test_a_witness_file_that_cannot_be_appended_to_stops_each_signer_at_start(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    witness = tmp_path / "no-such-dir" / "checkpoints.txt"
    done = run_epoa(*command, env={"EPOA_CHECKPOINT_FILE": str(witness)}, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"epoa: bad settings: EPOA_CHECKPOINT_FILE={witness} cannot be appended to: "
        "No such file or directory"
    )


def test_a_witness_file_that_is_a_directory_stops_the_projector(tmp_path: Path) -> None:
    done = run_epoa("project", "--once", env={"EPOA_CHECKPOINT_FILE": "."}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "EPOA_CHECKPOINT_FILE=. cannot be appended to: Is a directory" in done.stderr


def test_a_bad_seal_key_stops_serve_with_one_line_and_no_banner(tmp_path: Path) -> None:
    """The banner (the docs' address, the development API keys) promised a server that
    the next line said would not start."""
    key = tmp_path / "seal.pem"
    key.write_text("not a key\n")
    done = run_epoa("serve", "--port", "1", env={"EPOA_SEAL_KEY": str(key)}, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"epoa: bad settings: EPOA_SEAL_KEY={key}: "), done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_db_init_with_an_owner_url_that_is_no_postgresql_says_so(tmp_path: Path) -> None:
    """It said that the two URLs named other databases."""
    env = {
        "EPOA_DATABASE_URL": "postgresql://epoa_service@127.0.0.1:1/epoa",
        "EPOA_ADMIN_DATABASE_URL": "sqlite:///epoa",
    }
    done = run_epoa("db", "init", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "epoa: bad settings: `epoa db init` needs a postgresql:// EPOA_ADMIN_DATABASE_URL"
    )
