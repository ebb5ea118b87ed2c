"""The person directory from files of many batches: memory that does not grow with the
file, all or nothing to the last row, and every bad row found across batches."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections import persons, persons_file
from projections.db import Database, connect
from tests.support import directory_files
from tests.support.directory_files import HEADER, iins, rows, write

EPOA = str(Path(sys.executable).with_name("epoa"))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = connect(database_url)
    persons.create_table(database)
    yield database
    database.close()


def command_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    return env | {"EPOA_LOG_LEVEL": "WARNING", **settings}


def everyone(db: Database) -> list[tuple[object, ...]]:
    return db.fetch("SELECT iin, full_name, birth_date FROM persons ORDER BY iin")


def test_a_bad_row_at_the_end_of_a_large_file_leaves_the_directory_as_it_was(
    db: Database, tmp_path: Path
) -> None:
    persons.import_csv(db, write(tmp_path / "first.csv", rows(10)))
    before = everyone(db)
    good = [line.replace("PERSON", "RENAMED") for line in rows(3 * persons.BATCH + 7)]
    path = write(tmp_path / "all.csv", [*good, "850312400129,BAD CHECK DIGIT,1985-03-12"])
    with pytest.raises(persons.PersonsImportError) as caught:
        persons.import_csv(db, path)
    assert [line for line, _ in caught.value.problems] == [len(good) + 2]
    assert everyone(db) == before
    assert persons.import_csv(db, write(path, good)) == len(good)  # nothing of it was left
    assert len(everyone(db)) == len(good)


def test_an_iin_repeated_a_batch_later_is_named_with_the_line_of_the_first(
    db: Database, tmp_path: Path
) -> None:
    good = rows(persons.BATCH + 20)
    first = good[0].split(",")[0]
    path = write(tmp_path / "persons.csv", [*good, f"{first},SOMEONE ELSE,1990-01-01"])
    with pytest.raises(persons.PersonsImportError) as caught:
        persons.import_csv(db, path)
    assert caught.value.problems == [(len(good) + 2, f"IIN {first} is already on line 2")]
    assert everyone(db) == []


def test_past_a_thousand_bad_rows_the_first_are_named_in_line_order_and_the_rest_counted(
    db: Database, tmp_path: Path
) -> None:
    """An IIN repeated early is named before the many bad rows that follow it."""
    good = rows(2)
    repeat = good[0].replace("PERSON", "AGAIN")
    empty = [f"{iin},,1980-01-01" for iin in iins(persons_file.KEPT + 500, first=1000)]
    path = write(tmp_path / "persons.csv", [*good, repeat, *empty])
    with pytest.raises(persons.PersonsImportError) as caught:
        persons.import_csv(db, path)
    lines = [line for line, _ in caught.value.problems]
    assert lines == list(range(4, 4 + persons_file.KEPT))
    assert "already on line 2" in caught.value.problems[0][1]
    assert caught.value.count == len(empty) + 1
    assert everyone(db) == []


def test_the_command_names_the_first_bad_rows_on_stderr_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    empty = [f"{iin},,1980-01-01" for iin in iins(persons_file.KEPT + 5)]
    write(tmp_path / "persons.csv", empty)
    done = subprocess.run(
        [EPOA, "persons", "import", "persons.csv"],
        cwd=tmp_path,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == "", done.stdout
    report = done.stderr.splitlines()
    assert report[0] == "persons.csv:2: full_name is empty"
    assert report[persons_file.KEPT - 1].startswith(f"persons.csv:{persons_file.KEPT + 1}: ")
    assert report[persons_file.KEPT :] == [
        "persons.csv: and 5 more",
        f"nothing imported: {persons_file.KEPT + 5} bad row(s)",
    ]


def test_a_line_end_split_by_a_read_counts_as_one_line(db: Database, tmp_path: Path) -> None:
    """`\\r` the last byte of one read and `\\n` the first of the next: still one line."""
    text, count = directory_files.HEADER.replace("\n", "\r\n"), 0
    for line in rows(persons.BATCH):
        if len(text) + len(line) + 2 > persons_file.CHUNK - 100:
            break
        text, count = text + line + "\r\n", count + 1
    last = rows(1, first=10**9)[0]
    padding = " " * (persons_file.CHUNK - 1 - len(text) - len(last))
    text += last.replace("PERSON", "PERSON" + padding) + "\r\n"
    assert text.encode()[persons_file.CHUNK - 1 : persons_file.CHUNK + 1] == b"\r\n"
    path = tmp_path / "persons.csv"
    path.write_bytes(text.encode() + b"850312400129,BAD CHECK DIGIT,1985-03-12\r\n")
    with pytest.raises(persons.PersonsImportError) as caught:
        persons.import_csv(db, path)
    assert [line for line, _ in caught.value.problems] == [count + 3]


def test_a_line_too_long_for_a_row_ends_the_file_with_its_line_named(
    db: Database, tmp_path: Path
) -> None:
    path = write(tmp_path / "persons.csv", [*rows(2), "x" * (persons_file.LONGEST_LINE + 1)])
    with pytest.raises(persons.PersonsImportError) as caught:
        persons.import_csv(db, path)
    assert caught.value.problems == [(4, persons_file.TOO_LONG)]


def test_importing_a_file_four_times_as_large_takes_no_more_memory(tmp_path: Path) -> None:
    """The whole file, its text and a list of its persons were held at once: 95 MB more
    for 200,000 rows than for 50,000."""
    env = command_env(EPOA_DATABASE_URL="sqlite:///epoa.sqlite")
    peaks = []
    for count in (50_000, 200_000):
        path = write(tmp_path / f"{count}.csv", rows(count))
        (tmp_path / "epoa.sqlite").unlink(missing_ok=True)
        command = [EPOA, "persons", "import", str(path)]
        peaks.append(directory_files.peak_rss_kib(command, env, tmp_path))
    small, large = peaks
    assert large - small < 16 * 1024, f"peak RSS {small} KiB for 50,000 rows, {large} for 200,000"


def test_a_sqlite_store_takes_commands_while_an_import_reads_its_file(tmp_path: Path) -> None:
    """The store's write lock is the upsert's alone: an import still reading its file (here
    a pipe, half written) leaves the store free for the commands of the service."""
    store = tmp_path / "epoa.sqlite"
    db = connect(f"sqlite:///{store}")
    persons.create_table(db)
    pipe = tmp_path / "persons.fifo"
    os.mkfifo(pipe)
    good = rows(2 * persons.BATCH)
    outcome: list[object] = []
    reader = threading.Thread(target=lambda: outcome.append(persons.import_csv(db, pipe)))
    reader.start()
    try:
        with pipe.open("w") as feed:
            feed.write(HEADER + "".join(line + "\n" for line in good[: persons.BATCH + 1]))
            feed.flush()
            time.sleep(0.5)  # the import reads what came and waits for the rest
            other = sqlite3.connect(store, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # "database is locked" while it reads
                other.execute("ROLLBACK")
            finally:
                other.close()
            feed.write("".join(line + "\n" for line in good[persons.BATCH + 1 :]))
    finally:
        reader.join(timeout=60)
    assert outcome == [len(good)]
    assert len(everyone(db)) == len(good)
    db.close()
