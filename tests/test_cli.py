"""The `epoa` command as an operator types it, on the embedded default."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.eds import TrustStore, Verifier
from epoa.demo_keys import load_demo

EPOA = str(Path(sys.executable).with_name("epoa"))


def epoa(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env["EPOA_LOG_LEVEL"] = "WARNING"
    return subprocess.run(
        [EPOA, *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_importing_a_good_person_file_reports_how_many(tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        "iin,full_name,birth_date\n850312400128,SADYKOVA AIGERIM,1985-03-12\n"
        "790521300451,ZHUMABEKOV YERLAN,1979-05-21\n"
    )
    result = epoa(tmp_path, "persons", "import", str(people))
    assert result.returncode == 0, result.stderr
    assert "imported 2 person(s)" in result.stdout


def test_a_person_file_with_bad_rows_names_each_line_on_stderr_and_imports_nothing(
    tmp_path: Path,
) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        "iin,full_name,birth_date\n850312400128,SADYKOVA AIGERIM,1985-03-12\n"
        "850312400129,BAD CHECK DIGIT,1985-03-12\n790521300451,,1979-05-21\n"
    )
    result = epoa(tmp_path, "persons", "import", str(people))
    assert result.returncode == 1
    assert f"{people}:3:" in result.stderr and f"{people}:4:" in result.stderr
    assert "nothing imported" in result.stderr and result.stdout == ""
    good = tmp_path / "good.csv"
    good.write_text("iin,full_name,birth_date\n790521300451,ZHUMABEKOV YERLAN,1979-05-21\n")
    assert "imported 1 person(s)" in epoa(tmp_path, "persons", "import", str(good)).stdout


HEADER, GOOD = "iin,full_name,birth_date\n", "850312400128,SADYKOVA AIGERIM,1985-03-12\n"
CP1251 = "790521300451,ЖУМАБЕКОВ ЕРЛАН,1979-05-21\n".encode("cp1251")


@pytest.mark.parametrize(
    ("content", "line", "fault"),
    [
        ((HEADER + GOOD).encode() + CP1251, 3, "not UTF-8 text (byte 0xc6)"),
        ((HEADER + GOOD).replace("\n", "\r").encode() + CP1251, 3, "not UTF-8 text"),
        ((HEADER + GOOD).encode() + b"790521300451,ZHUM\0ABEKOV,1979-05-21\n", 3, "not UTF-8"),
        ((HEADER + GOOD).encode("utf-16"), 1, "the file is UTF-16, not UTF-8"),
        ((HEADER + GOOD).encode("utf-16-le"), 1, "the file is UTF-16, not UTF-8"),
    ],
    ids=["cp1251", "cr-line-ends", "zero-byte", "utf-16", "utf-16-no-bom"],
)
def test_a_person_file_not_in_utf8_names_its_line_and_imports_nothing(
    tmp_path: Path, content: bytes, line: int, fault: str
) -> None:
    (tmp_path / "persons.csv").write_bytes(content)
    result = epoa(tmp_path, "persons", "import", "persons.csv")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"persons.csv:{line}: {fault}"), result.stderr
    assert "nothing imported" in result.stderr and "Traceback" not in result.stderr


def test_a_person_file_in_utf8_with_a_byte_order_mark_is_imported(tmp_path: Path) -> None:
    (tmp_path / "bom.csv").write_text(HEADER + GOOD, encoding="utf-8-sig")
    assert "imported 1 person(s)" in epoa(tmp_path, "persons", "import", "bom.csv").stdout


def test_demo_keys_sign_a_document_and_the_projection_worker_catches_up_and_rebuilds(
    tmp_path: Path,
) -> None:
    made = epoa(tmp_path, "keys", "demo", "keys")
    assert made.returncode == 0, made.stderr
    demo = load_demo(tmp_path / "keys")
    assert "trust bundle" in made.stdout and demo.principal.id in made.stdout
    document = {
        "type": "epoa.revoke",
        "document_id": "0b7c6a38-5f36-4a43-8d0e-8c1f7f1d2a55",
        "signed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "poa_id": "3d6f0a3e-1d59-4c1e-b4a5-6a9f2f9f5d10",
    }
    signed = epoa(
        tmp_path, "sign", "--key", str(demo.principal.p12), "-", stdin=json.dumps(document)
    )
    assert signed.returncode == 0, signed.stderr
    body = json.loads(signed.stdout)
    assert body["document"] == document
    verifier = Verifier(TrustStore.from_path(demo.ca_pem))
    assert verifier.verify(body["document"], body["signature"]).signer_id == demo.principal.id
    once = epoa(tmp_path, "project", "--once")
    assert once.returncode == 0, once.stderr
    rebuilt = epoa(tmp_path, "project", "--rebuild")
    assert rebuilt.returncode == 0 and "rebuilt the read models" in rebuilt.stdout


def test_an_operators_mistake_is_one_line_naming_it_and_exit_1_never_a_traceback(
    tmp_path: Path,
) -> None:
    assert epoa(tmp_path, "keys", "demo", str(tmp_path / "demo")).returncode == 0
    key = str(tmp_path / "demo" / "principal.p12")
    document = tmp_path / "document.json"
    document.write_text('{"type": "epoa.revoke"}')
    mistakes = {
        "a wrong PKCS#12 password": (
            ("sign", "--key", key, "--password", "wrong", str(document)),
            None,
            "cannot sign with this key",
        ),
        "a key file that is not there": (
            ("sign", "--key", str(tmp_path / "none.p12"), str(document)),
            None,
            f"No such file or directory: {tmp_path / 'none.p12'}",
        ),
        "a document that is not JSON": (("sign", "--key", key, "-"), "{bad", "malformed JSON"),
        "a person file that is not there": (
            ("persons", "import", str(tmp_path / "none.csv")),
            None,
            f"No such file or directory: {tmp_path / 'none.csv'}",
        ),
        "an export to a folder that is not there": (
            ("audit", "export", str(tmp_path / "none" / "log.jsonl")),
            None,
            "No such file or directory",
        ),
    }
    for mistake, (args, stdin, words) in mistakes.items():
        result = epoa(tmp_path, *args, stdin=stdin)
        assert result.returncode == 1, mistake
        assert "Traceback" not in result.stderr, (mistake, result.stderr)
        last = result.stderr.splitlines()[-1]
        assert last.startswith("epoa: ") and words in last, (mistake, result.stderr)


def test_an_audit_where_there_is_no_store_fails_and_makes_none(tmp_path: Path) -> None:
    for command in (["audit", "verify"], ["audit", "export", "history.jsonl"]):
        result = epoa(tmp_path, *command)
        assert result.returncode == 2, result.stdout
        assert "no event store at sqlite:///var/epoa.sqlite" in result.stderr
        assert "INTACT" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_help_of_each_process_names_its_defaults_and_the_settings_it_reads(
    tmp_path: Path,
) -> None:
    serve = epoa(tmp_path, "serve", "--help").stdout
    assert "(127.0.0.1)" in serve and "(8000)" in serve
    consume = " ".join(epoa(tmp_path, "consume", "--help").stdout.split())
    for setting in ("EPOA_KAFKA_BOOTSTRAP", "EPOA_CASE_EVENTS_TOPIC", "EPOA_TRUSTED_CA"):
        assert setting in consume
    assert "process list" in " ".join(epoa(tmp_path, "sign", "--help").stdout.split())
    assert not (tmp_path / "var").exists()


def test_demo_keys_are_not_replaced_unless_forced(tmp_path: Path) -> None:
    """A new demo CA would leave every signature made with the old keys untrusted."""
    assert epoa(tmp_path, "keys", "demo", "demo").returncode == 0
    ca = (tmp_path / "demo" / "ca.pem").read_bytes()
    again = epoa(tmp_path, "keys", "demo", "demo")
    assert again.returncode == 1 and "--force" in again.stderr, again.stderr
    assert (tmp_path / "demo" / "ca.pem").read_bytes() == ca
    assert epoa(tmp_path, "keys", "demo", "demo", "--force").returncode == 0
    assert (tmp_path / "demo" / "ca.pem").read_bytes() != ca


def test_demo_keys_kept_without_their_ca_are_not_replaced_either(tmp_path: Path) -> None:
    assert epoa(tmp_path, "keys", "demo", "demo").returncode == 0
    (tmp_path / "demo" / "ca.pem").unlink()
    principal = (tmp_path / "demo" / "principal.p12").read_bytes()
    again = epoa(tmp_path, "keys", "demo", "demo")
    assert again.returncode == 1
    assert (
        again.stderr.startswith("epoa: demo already holds demo keys")
        and again.stderr.count("\n") == 1
    ), again.stderr
    assert (tmp_path / "demo" / "principal.p12").read_bytes() == principal
    assert not (tmp_path / "demo" / "ca.pem").exists()
    assert "--force" in epoa(tmp_path, "keys", "demo", "--help").stdout


@pytest.mark.parametrize(
    ("store", "words"),
    [("var", "unable to open database file"), ("notes.txt", "file is not a database")],
    ids=["a-directory", "a-file-of-another-kind"],
)
@pytest.mark.parametrize(
    "command",
    [
        ("serve", "--port", "1"),
        ("project", "--once"),
        ("project", "--rebuild"),
        ("persons", "import", "people.csv"),
    ],
    ids=lambda command: " ".join(command),
)
def test_a_sqlite_store_that_is_no_database_is_one_line_naming_it_and_exit_1(
    tmp_path: Path, store: str, words: str, command: tuple[str, ...]
) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "notes.txt").write_text("not a database, a page of notes\n" * 100)
    (tmp_path / "people.csv").write_text(HEADER + GOOD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env |= {"EPOA_LOG_LEVEL": "WARNING", "EPOA_DATABASE_URL": f"sqlite:///{store}"}
    done = subprocess.run(
        [EPOA, *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"epoa: the store at sqlite:///{store} refused: ") and words in last


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http"])
def test_a_port_serve_cannot_listen_on_is_a_usage_error(tmp_path: Path, port: str) -> None:
    done = epoa(tmp_path, "serve", "--port", port)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"argument --port: '{port}' is no TCP port: 1 to 65535" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "var").exists()


def test_an_address_serve_cannot_listen_on_is_one_line_and_exit_1_with_no_banner(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = epoa(tmp_path, "serve", "--port", str(port))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"epoa: cannot listen on 127.0.0.1:{port}: Address already in use"
    ), done.stderr
    assert "API docs" not in done.stdout
    unknown = epoa(tmp_path, "serve", "--host", "no-such-host.invalid", "--port", "8000")
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert unknown.stderr.splitlines()[-1].startswith("epoa: --host no-such-host.invalid: ")


def test_an_export_without_the_stores_seal_key_makes_none_and_keeps_the_last_export(
    tmp_path: Path,
) -> None:
    """It made a development key, and wrote an export whose header named that key instead
    of the store's: every record of it then failed its seal check."""
    assert epoa(tmp_path, "project", "--once").returncode == 0
    assert epoa(tmp_path, "audit", "export", "history.jsonl").returncode == 0
    kept = (tmp_path / "history.jsonl").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env |= {"EPOA_LOG_LEVEL": "WARNING", "EPOA_VAR_DIR": "elsewhere"}
    done = subprocess.run(
        [EPOA, "audit", "export", "history.jsonl"],
        cwd=tmp_path,
        env={**env, "EPOA_DATABASE_URL": "sqlite:///var/epoa.sqlite"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("epoa: bad settings: no seal key: "), done.stderr
    assert not (tmp_path / "elsewhere" / "seal-key.pem").exists()
    assert (tmp_path / "history.jsonl").read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl", "var"]


def test_a_quote_never_closed_in_a_large_person_file_names_its_line_and_imports_nothing(
    tmp_path: Path,
) -> None:
    """The rest of the file became one field, larger than the CSV reader takes: a traceback."""
    rest = "".join(f"790521300451,PERSON {n},1979-05-21\n" for n in range(5000))
    (tmp_path / "persons.csv").write_text(
        HEADER + GOOD + '881107400786,"ABDRAKHMANOVA,1988-11-07\n' + rest
    )
    result = epoa(tmp_path, "persons", "import", "persons.csv")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("persons.csv:3: unreadable CSV from here on"), result.stderr
    assert "quote opened on this line never closed" in result.stderr
    assert "nothing imported" in result.stderr


def test_a_bad_row_spanning_lines_is_named_by_the_line_it_begins_on(tmp_path: Path) -> None:
    """It was named by the line it ended on, where the row's IIN is not to be seen."""
    (tmp_path / "persons.csv").write_text(
        HEADER + '850312400128,"SADYKOVA\nAIGERIM",1985-02-30\n850312400129,X,1985-03-12\n'
    )
    result = epoa(tmp_path, "persons", "import", "persons.csv")
    assert result.returncode == 1, result.stdout + result.stderr
    assert [line.split(": ")[0] for line in result.stderr.splitlines()] == [
        "persons.csv:2",
        "persons.csv:4",
        "nothing imported",
    ], result.stderr


def test_read_models_an_upgrade_cannot_use_stop_serve_and_project_with_one_line_and_no_banner(
    tmp_path: Path,
) -> None:
    """A `poa_status` of an earlier version holding a POA the log does not hold: the
    upgrade refuses it, and both commands say so on one line, exit 1, before serving."""
    assert epoa(tmp_path, "project", "--once").returncode == 0
    store = sqlite3.connect(tmp_path / "var" / "epoa.sqlite")
    for index in ("by_position", "by_case_position", "by_principal_position"):
        store.execute(f"DROP INDEX poa_status_{index}")
    store.execute("ALTER TABLE poa_status DROP COLUMN issued_position")
    store.execute(
        "INSERT INTO poa_status VALUES ('00000000-0000-4000-8000-000000000001', 'C-1', "
        "'850312400128', NULL, 'active', '2026-01-01T00:00:00.000000+00:00', NULL, NULL, "
        "NULL, NULL, NULL, 1, '[]', '[]')"
    )
    store.commit()
    store.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    for command in (("project", "--once"), ("serve", "--port", port)):
        done = epoa(tmp_path, *command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and "API docs" not in done.stdout, done.stderr
        assert done.stderr.splitlines()[-1] == (
            "epoa: poa_status: 1 POA(s) whose first record the log does not hold; nothing "
            "was changed: run `epoa audit verify`"
        )
