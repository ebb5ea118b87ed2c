"""A person directory file, read a line at a time: its good rows, each with the line it
begins on, and what is wrong with the others.

The national directory has tens of millions of rows, so nothing here holds more than a
chunk of the file, one row and the first `KEPT` problems, whatever the file's size.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, BinaryIO

from domain.iin import is_valid_iin_bin

HEADER = ["iin", "full_name", "birth_date"]
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
UNCLOSED = "is a quote opened on this line never closed?"
CHUNK = 1 << 16
"""Bytes read at a time."""
LONGEST_LINE = 1 << 20
"""Bytes: a row of the directory is a few dozen; a longer line is no CSV of it."""
TOO_LONG = f"longer than {LONGEST_LINE} bytes, no row of the directory: unreadable from here on"
KEPT = 1000
"""Problems reported line by line; the rest are counted."""

Person = tuple[str, str, str]


class Problems:
    """The first `KEPT` problems of a file in line order, and how many it has in all."""

    def __init__(self, kept: list[tuple[int, str]] | None = None, count: int = 0) -> None:
        self.kept = kept or []
        self.count = max(count, len(self.kept))

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.kept) < KEPT:
            self.kept.append((line, message))

    def merged(self, other: Problems) -> Problems:
        """Both, in line order: the first `KEPT` of both are among the first of each."""
        kept = sorted(self.kept + other.kept)[:KEPT]
        return Problems(kept, self.count + other.count)

    def __bool__(self) -> bool:
        return self.count > 0


class DirectoryFile:
    """Lines end as `csv` ends them (`\\n`, `\\r\\n` or `\\r`), so the numbers are those of
    its rows. A file not in UTF-8 (a spreadsheet's cp1251 or UTF-16 export, say) is
    reported by its lines that are not UTF-8, and by those alone: the directory's names
    are never guessed from another encoding, and its rows could not be read right."""

    def __init__(self, raw: BinaryIO) -> None:
        self.problems = Problems()
        self.undecodable = False
        """Whether the problems are the lines that are not UTF-8 text."""
        self._raw = raw
        self._head = raw.read(CHUNK)
        self._number = 0
        self._lines = self._physical_lines()
        self._not_utf8 = Problems()
        self._too_long: int | None = None

    def rows(self) -> Iterator[tuple[int, Person]]:
        """The good rows; once they are all read, `problems` holds every bad one."""
        wide = _wide_encoding(self._head)
        if wide is not None:
            self.problems.add(1, f"the file is {wide}, not UTF-8: save it as CSV in UTF-8")
            self.undecodable = True
            return
        yield from self._parse(csv.reader(self._text()))
        for line in self._lines:  # those a bad header, a quote or a line not UTF-8 left
            self._check(line)
        if self._not_utf8:
            self.problems, self.undecodable = self._not_utf8, True
        if self._too_long is not None:
            self.problems.add(self._too_long, TOO_LONG)

    def _parse(self, reader: Any) -> Iterator[tuple[int, Person]]:
        try:
            header = next(reader, None)
        except csv.Error:
            header = None
        if header is None or [cell.strip() for cell in header] != HEADER:
            self.problems.add(1, f"the header must be {','.join(HEADER)}")
            return
        latest_birth = _today_somewhere()
        while True:
            line = reader.line_num + 1  # where the row begins: a quoted field may span lines
            try:
                cells = next(reader, None)
            except csv.Error as error:  # a quote never closed swallows the rest of the file
                self.problems.add(line, f"unreadable CSV from here on ({error}): {UNCLOSED}")
                return
            if cells is None:
                return
            if not cells:
                continue
            person, message = _person(cells, latest_birth)
            if message is None and person is not None:
                yield line, person
            else:
                self.problems.add(line, message or "unreadable row")

    def _text(self) -> Iterator[str]:
        """The lines as text, up to the first that is not UTF-8 text."""
        for line in self._lines:
            text = self._check(line)
            if text is None:
                return
            yield text.removeprefix("\ufeff") if self._number == 1 else text

    def _check(self, line: bytes) -> str | None:
        """The line as text, or None with the line among the problems; a zero byte is
        UTF-8, but no text, and would end up in a name."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            byte: int | None = line[error.start]
        else:
            byte = 0 if "\x00" in text else None
        if byte is None:
            return text
        self._not_utf8.add(
            self._number, f"not UTF-8 text (byte {byte:#04x}): save it as CSV in UTF-8"
        )
        return None

    def _physical_lines(self) -> Iterator[bytes]:
        """Each line with its end, up to one longer than `LONGEST_LINE`."""
        for line in self._split():
            if len(line) > LONGEST_LINE:
                self._too_long = self._number + 1
                return
            self._number += 1
            yield line

    def _split(self) -> Iterator[bytes]:
        """A last `\\r` of a chunk waits for the next, which may begin with its `\\n`; so
        does the start of a line, unless it is already too long to be one."""
        pending, chunk = b"", self._head
        while chunk:
            lines = (pending + chunk).splitlines(keepends=True)
            pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
            yield from lines
            if len(pending) > LONGEST_LINE:
                break
            chunk = self._raw.read(CHUNK)
        if pending:
            yield pending


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16 or UTF-32 (Excel's "Unicode text"), by its byte order mark, or by the zero
    bytes of the header's ASCII letters when it has none: such a file is valid UTF-8
    byte for byte, but none of its rows could be read."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "UTF-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    first = head[:200].splitlines()[:1]
    return "UTF-16" if first and b"\x00" in first[0] else None


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
