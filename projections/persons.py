"""Who is this IIN? The person directory, reference data imported from a CSV file.

Not built from events, so a rebuild never touches it. An import is all or nothing: a file
with any bad row changes nothing, and every bad row is reported at once (the first
thousand by line, the rest counted), so whoever fixes the file fixes it in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path

from domain.errors import InvalidInputError
from projections import persons_staging as staging
from projections.db import Database
from projections.persons_file import DirectoryFile, Person

DDL = (
    """CREATE TABLE IF NOT EXISTS persons (
        iin TEXT PRIMARY KEY,
        full_name TEXT NOT NULL,
        birth_date TEXT NOT NULL
    )""",
)

BATCH = 5000
"""Rows per statement into the staging table."""


class PersonsImportError(InvalidInputError):
    """The first bad rows of a file, as (line number, what is wrong), and how many it has."""

    def __init__(self, problems: list[tuple[int, str]], count: int | None = None) -> None:
        self.problems = problems
        self.count = len(problems) if count is None else count
        more = f"; and {self.count - len(problems)} more" if self.count > len(problems) else ""
        super().__init__("; ".join(f"line {n}: {message}" for n, message in problems) + more)


def create_table(db: Database) -> None:
    db.create(DDL)


def import_csv(db: Database, path: Path | str) -> int:
    """Upsert every person of the file in one transaction; return how many rows it had.

    The rows wait in a staging table, a batch at a time, until the whole file is known
    good, so memory stays that of one batch whatever the file's size."""
    create_table(db)
    with Path(path).open("rb") as raw:
        directory = DirectoryFile(raw)
        staging.create(db)
        try:
            count = 0
            for batch in _batches(directory.rows()):
                staging.add(db, [(line, *person) for line, person in batch])
                count += len(batch)
            problems = directory.problems
            if not directory.undecodable:
                problems = problems.merged(staging.repeats(db))
            if problems:
                raise PersonsImportError(problems.kept, problems.count)
            staging.apply(db)
        finally:
            staging.drop(db)
    return count


def _batches(rows: Iterator[tuple[int, Person]]) -> Iterator[list[tuple[int, Person]]]:
    while batch := list(islice(rows, BATCH)):
        yield batch


def find_person(db: Database, iin: str) -> dict[str, str] | None:
    row = db.fetch_one("SELECT iin, full_name, birth_date FROM persons WHERE iin = ?", (iin,))
    return None if row is None else {"iin": row[0], "full_name": row[1], "birth_date": row[2]}


NAMES_PER_QUERY = 500
"""IINs per lookup statement, under SQLite's oldest limit of 999 parameters."""


def find_names(db: Database, iins: Sequence[str]) -> dict[str, str]:
    """The directory's full names of `iins`, by IIN; unknown ones are left out. One query
    for a command's principal and attorneys together."""
    wanted = list(dict.fromkeys(iins))
    found: dict[str, str] = {}
    for at in range(0, len(wanted), NAMES_PER_QUERY):
        chunk = wanted[at : at + NAMES_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        rows = db.fetch(f"SELECT iin, full_name FROM persons WHERE iin IN ({marks})", chunk)
        found.update((str(iin), str(name)) for iin, name in rows)
    return found


def names(db: Database) -> Callable[[Sequence[str]], Mapping[str, str]]:
    """The registry's name lookup: a POA records the names the directory had when issued."""
    create_table(db)
    return lambda iins: find_names(db, iins)
