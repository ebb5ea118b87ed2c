"""Who is this IIN? The person directory, reference data imported from a CSV file.

Not built from events, so a rebuild never touches it. An import is all or nothing: a file
with any bad row changes nothing, and every bad row is reported at once, so whoever fixes
the file fixes it in one pass.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from domain.errors import InvalidInputError
from domain.iin import is_valid_iin_bin
from projections.db import Database

HEADER = ["iin", "full_name", "birth_date"]
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
UNCLOSED = "is a quote opened on this line never closed?"

DDL = (
    """CREATE TABLE IF NOT EXISTS persons (
        iin TEXT PRIMARY KEY,
        full_name TEXT NOT NULL,
        birth_date TEXT NOT NULL
    )""",
)

UPSERT = (
    "INSERT INTO persons (iin, full_name, birth_date) VALUES (?, ?, ?) "
    "ON CONFLICT (iin) DO UPDATE SET full_name = excluded.full_name, "
    "birth_date = excluded.birth_date"
)

Person = tuple[str, str, str]


class PersonsImportError(InvalidInputError):
    """Every bad row of a file, as (line number, what is wrong)."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(f"line {line}: {message}" for line, message in problems))
        self.problems = problems


def create_table(db: Database) -> None:
    db.create(DDL)


def import_csv(db: Database, path: Path | str) -> int:
    """Upsert every person of the file in one transaction; return how many rows it had."""
    text, problems = _utf8_text(Path(path).read_bytes())
    if not problems:
        persons, problems = _parse(csv.reader(io.StringIO(text, newline="")))
    if problems:
        raise PersonsImportError(problems)
    create_table(db)
    with db.transaction():
        db.executemany(UPSERT, persons)
    return len(persons)


def _utf8_text(data: bytes) -> tuple[str, list[tuple[int, str]]]:
    """The file's text, or each line that is not UTF-8 (a spreadsheet's cp1251 or UTF-16
    export, say): the directory's names are never guessed from another encoding. Lines
    end as `csv` ends them (`\n`, `\r\n` or `\r`), so the numbers are those of its rows."""
    wide = _wide_encoding(data)
    if wide is not None:
        return "", [(1, f"the file is {wide}, not UTF-8: save it as CSV in UTF-8")]
    problems = []
    for number, line in enumerate(data.splitlines(), start=1):
        byte = _bad_byte(line)
        if byte is not None:
            problems.append((number, f"not UTF-8 text (byte {byte:#04x}): save it as CSV in UTF-8"))
    if problems:
        return "", problems
    return data.decode("utf-8-sig"), []


def _bad_byte(line: bytes) -> int | None:
    """The first byte of the line that is not UTF-8 text; a zero byte is UTF-8, but no
    text, and would end up in a name."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        return line[error.start]
    return 0 if b"\x00" in line else None


def _wide_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32 (Excel's "Unicode text"), by its byte order mark, or by the zero
    bytes of the header's ASCII letters when it has none: such a file is valid UTF-8
    byte for byte, but none of its rows could be read."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "UTF-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    first = data[:200].splitlines()[:1]
    return "UTF-16" if first and b"\x00" in first[0] else None


def _parse(reader: Any) -> tuple[list[Person], list[tuple[int, str]]]:
    persons: list[Person] = []
    problems: list[tuple[int, str]] = []
    header = next(reader, None)
    if header is None or [cell.strip() for cell in header] != HEADER:
        return [], [(1, f"the header must be {','.join(HEADER)}")]
    first_seen: dict[str, int] = {}
    latest_birth = _today_somewhere()
    while True:
        line = reader.line_num + 1  # where the row begins: a quoted field may span lines
        try:
            cells = next(reader, None)
        except csv.Error as error:  # a quote never closed swallows the rest of the file
            problems.append((line, f"unreadable CSV from here on ({error}): {UNCLOSED}"))
            return persons, problems
        if cells is None:
            break
        if not cells:
            continue
        person, message = _person(cells, latest_birth)
        if person is not None and person[0] in first_seen:
            message = f"IIN {person[0]} is already on line {first_seen[person[0]]}"
        if message is not None or person is None:
            problems.append((line, message or "unreadable row"))
            continue
        first_seen[person[0]] = line
        persons.append(person)
    return persons, problems


def _today_somewhere() -> date:
    """The latest date that is today anywhere on Earth (UTC+14): a birth date after it is
    a typo, however far east the person was born."""
    return (datetime.now(UTC) + timedelta(hours=14)).date()


def _person(cells: list[str], latest_birth: date) -> tuple[Person | None, str | None]:
    if len(cells) != len(HEADER):
        return None, f"{len(HEADER)} fields are required, found {len(cells)}"
    iin, name, birth = (cell.strip() for cell in cells)
    wrong = []
    if not is_valid_iin_bin(iin):
        wrong.append(f"iin {iin!r} is not a valid IIN (12 digits with check digit)")
    if not name:
        wrong.append("full_name is empty")
    if not _is_date(birth):
        wrong.append(f"birth_date {birth!r} is not a date YYYY-MM-DD")
    elif date.fromisoformat(birth) > latest_birth:
        wrong.append(f"birth_date {birth} is in the future")
    return (iin, name, birth), "; ".join(wrong) or None


def _is_date(text: str) -> bool:
    if not DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


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
