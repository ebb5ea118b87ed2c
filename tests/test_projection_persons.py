"""The person directory: all-or-nothing CSV imports, lookups, and names on new POAs."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain.errors import InvalidInputError
from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import build_registry
from projections import persons
from projections.db import Database, connect
from projections.poa_status import find_poa
from projections.runner import ProjectionRunner
from tests.conftest import Clock
from tests.support.people import People
from tests.support.pki import complete_id

ALIYA = complete_id("90010130001")
BEREK = complete_id("85020240002")
SAULE = complete_id("77030350003")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = connect(database_url)
    persons.create_table(database)
    yield database
    database.close()


def csv_file(tmp_path: Path, *rows: str, header: str = "iin,full_name,birth_date") -> Path:
    path = tmp_path / "persons.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def everyone(db: Database) -> list[tuple[object, ...]]:
    return db.fetch("SELECT iin, full_name, birth_date FROM persons ORDER BY iin")


def test_a_good_file_is_imported_and_each_person_can_be_found(db: Database, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        f"{ALIYA},Әлия Сейітқызы,1990-01-01",
        f'{BEREK},"Берік Асқарұлы, кіші",1985-02-02',
    )
    assert persons.import_csv(db, path) == 2
    assert persons.find_person(db, BEREK) == {
        "iin": BEREK,
        "full_name": "Берік Асқарұлы, кіші",
        "birth_date": "1985-02-02",
    }
    assert persons.find_person(db, SAULE) is None


def test_importing_a_person_again_updates_them(db: Database, tmp_path: Path) -> None:
    persons.import_csv(db, csv_file(tmp_path, f"{ALIYA},Aliya S,1990-01-01"))
    persons.import_csv(
        db, csv_file(tmp_path, f"{ALIYA},Aliya Seitova,1990-01-02", f"{SAULE},Saule,1977-03-03")
    )
    assert everyone(db) == sorted(
        [(ALIYA, "Aliya Seitova", "1990-01-02"), (SAULE, "Saule", "1977-03-03")]
    )


def test_a_file_with_bad_rows_reports_every_bad_line_and_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    persons.import_csv(db, csv_file(tmp_path, f"{ALIYA},Aliya,1990-01-01"))
    before = everyone(db)
    bad_iin = ALIYA[:11] + str((int(ALIYA[11]) + 1) % 10)
    path = csv_file(
        tmp_path,
        f"{ALIYA},Aliya Renamed,1990-01-01",  # line 2: good, and yet not applied
        f"{bad_iin},Wrong Digit,1990-01-01",  # line 3
        f"{BEREK},Berek,1985-02-02",  # line 4: good
        f"{SAULE},,1977-03-03",  # line 5: no name
        f"{complete_id('66040460004')},Dana,1966-02-30",  # line 6: no such day
        f"{BEREK},Berek Again,1985-02-02",  # line 7: twice in the file
        f"{complete_id('55050570005')},Erlan",  # line 8: a field missing
        f"{complete_id('44060680006')},Future,{date.today() + timedelta(days=2)}",  # line 9
    )
    with pytest.raises(persons.PersonsImportError) as caught:
        persons.import_csv(db, path)
    assert [line for line, _ in caught.value.problems] == [3, 5, 6, 7, 8, 9]
    assert "in the future" in dict(caught.value.problems)[9]
    assert "line 4" in dict(caught.value.problems)[7]
    assert everyone(db) == before


def test_a_file_without_the_expected_header_is_refused_at_line_one(
    db: Database, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, f"{ALIYA},Aliya,1990-01-01", header="iin,name,born")
    with pytest.raises(persons.PersonsImportError) as caught:
        persons.import_csv(db, path)
    assert [line for line, _ in caught.value.problems] == [1]
    assert everyone(db) == []


def shown_after(
    database_url: str,
    tmp_path: Path,
    db: Database,
    clock: Clock,
    directory: list[str],
    commands: Callable[[Registry], UUID],
) -> dict[str, Any]:
    """The POA that `commands` leave, as its read model shows it, once the `directory`
    rows (`iin,full_name,birth_date`) are imported."""
    persons.import_csv(db, csv_file(tmp_path, *directory))
    settings = Settings(database_url=database_url, var_dir=tmp_path / "var")
    registry = build_registry(settings, names=persons.names(db), clock=clock)
    try:
        poa_id = commands(registry)
        with ProjectionRunner(registry, database_url) as runner:
            runner.catch_up()
            shown = find_poa(runner.db, str(poa_id), clock.now)
    finally:
        registry.close()
    assert shown is not None
    return shown


def test_a_poa_issued_after_the_import_carries_the_directorys_names(
    database_url: str, tmp_path: Path, db: Database, people: People, clock: Clock
) -> None:
    directory = [
        f"{people.principal.iin},Әлия,1990-01-01",
        f"{people.attorney.iin},Berik,1985-02-02",
    ]
    shown = shown_after(
        database_url, tmp_path, db, clock, directory, lambda r: r.issue(people.issue()).poa.id
    )
    assert shown["principal"]["name"] == "Әлия"
    assert shown["attorneys"][0]["name"] == "Berik"


def test_every_attorney_gets_the_directorys_name_and_an_unknown_one_none(
    database_url: str, tmp_path: Path, db: Database, people: People, clock: Clock
) -> None:
    directory = [
        f"{people.attorney.iin},Berik,1985-02-02",
        f"{people.third_attorney.iin},Dana,1991-03-03",
    ]

    def commands(registry: Registry) -> UUID:
        attorneys = [{"iin": people.attorney.iin}, {"iin": people.second_attorney.iin}]
        poa = registry.issue(people.issue(attorneys=attorneys)).poa
        added = {"iin": people.third_attorney.iin}
        registry.add_attorney(
            poa.id, people.act("epoa.add-attorney", poa.id, people.principal, attorney=added)
        )
        return poa.id

    shown = shown_after(database_url, tmp_path, db, clock, directory, commands)
    assert shown["principal"]["name"] is None
    assert [(a["iin"], a["name"]) for a in shown["attorneys"]] == [
        (people.attorney.iin, "Berik"),
        (people.second_attorney.iin, None),
        (people.third_attorney.iin, "Dana"),
    ]


def test_a_name_the_document_gives_must_be_the_directorys_case_and_spacing_aside(
    database_url: str, tmp_path: Path, db: Database, people: People, clock: Clock
) -> None:
    directory = [f"{people.attorney.iin},Berik Sadykov,1985-02-02"]

    def refused(registry: Registry, command: Callable[[], object], words: str) -> None:
        before = registry.recorder.max_notification_id()
        with pytest.raises(InvalidInputError, match=words):
            command()
        assert registry.recorder.max_notification_id() == before

    def commands(registry: Registry) -> UUID:
        wrong = [{"iin": people.attorney.iin, "name": "Someone Else"}]
        refused(
            registry,
            lambda: registry.issue(people.issue(attorneys=wrong)),
            r"'Someone Else' given for .*\('Berik Sadykov'\)",
        )
        same = [{"iin": people.attorney.iin, "name": "  BERIK   sadykov "}]
        poa = registry.issue(people.issue(attorneys=same)).poa

        def add(attorney: dict[str, str]) -> object:
            document = people.act("epoa.add-attorney", poa.id, people.principal, attorney=attorney)
            return registry.add_attorney(poa.id, document)

        refused(registry, lambda: add({"iin": people.attorney.iin, "name": "Berik"}), "'Berik'")
        add({"iin": people.second_attorney.iin, "name": "Not In The Directory"})
        return poa.id

    shown = shown_after(database_url, tmp_path, db, clock, directory, commands)
    assert [(a["iin"], a["name"]) for a in shown["attorneys"]] == [
        (people.attorney.iin, "Berik Sadykov"),
        (people.second_attorney.iin, None),
    ]


def test_a_name_given_in_decomposed_letters_is_the_directorys_name_written_composed(
    database_url: str, tmp_path: Path, db: Database, people: People, clock: Clock
) -> None:
    """Й, Ё and the like may reach the portal composed (NFC) or decomposed (NFD, as some
    keyboards and systems write them): the same text either way, so the same name."""
    composed = "Йолдасбаев Ёрлан Әлиұлы"
    directory = [f"{people.attorney.iin},{composed},1985-02-02"]
    decomposed = unicodedata.normalize("NFD", composed.lower())
    assert decomposed != composed.lower()

    def commands(registry: Registry) -> UUID:
        stated = [{"iin": people.attorney.iin, "name": decomposed}]
        return registry.issue(people.issue(attorneys=stated)).poa.id

    shown = shown_after(database_url, tmp_path, db, clock, directory, commands)
    assert shown["attorneys"][0]["name"] == composed


def test_a_name_with_a_latin_letter_for_a_kazakh_one_is_refused_naming_both_letters(
    database_url: str, tmp_path: Path, db: Database, people: People, clock: Clock
) -> None:
    """Latin I and the Kazakh letter U+0406 look the same: the refusal says which is which,
    so the portal can show the citizen what to correct."""
    kazakh = "\u0406\u04a3\u043a\u04d9\u0440 \u04b0\u043b\u0430\u043d"
    persons.import_csv(db, csv_file(tmp_path, f"{people.attorney.iin},{kazakh},1985-02-02"))
    settings = Settings(database_url=database_url, var_dir=tmp_path / "var")
    registry = build_registry(settings, names=persons.names(db), clock=clock)
    try:
        stated = [{"iin": people.attorney.iin, "name": "I" + kazakh[1:]}]
        with pytest.raises(InvalidInputError) as caught:
            registry.issue(people.issue(attorneys=stated))
        assert registry.recorder.max_notification_id() in (None, 0)
    finally:
        registry.close()
    said = str(caught.value)
    assert "word 1, letter 1" in said
    assert "U+0049 LATIN CAPITAL LETTER I" in said
    assert "U+0406 CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I" in said


@pytest.mark.parametrize("name", [5, "", "   ", "x" * 201])
def test_a_name_that_is_not_a_short_text_is_refused(
    registry: Registry, people: People, name: Any
) -> None:
    with pytest.raises(InvalidInputError, match=r"attorneys\[0\]\.name: a non-empty string"):
        registry.issue(people.issue(attorneys=[{"iin": people.attorney.iin, "name": name}]))
    assert registry.recorder.max_notification_id() in (None, 0)
