"""`epoa audit verify` as an auditor runs it on a store or an export damaged in ways a seal
alone does not describe: each damage is a finding and the audit goes on to its verdict,
never a traceback; what cannot be audited at all is one line and exit 2."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from domain.checkpoint import key_id
from domain.seal import SealKey
from epoa.audit_export import export_to
from epoa.audit_proofs import pem_of
from epoa.settings import Settings
from tests.support.people import People
from tests.support.sqlite_tamper import reseal, reseal_all, rowid_of, swap_states
from tests.test_audit_verify import ORIGIN, opened, tell

EPOA = str(Path(sys.executable).with_name("epoa"))
HEADER = "(its first line is no epoa-audit-export/1 header)"


@dataclass(frozen=True)
class Kept:
    """A told history on SQLite (its `var` directory: store and seal key), its export, and
    the CA that signed its documents."""

    var: Path
    export: Path
    ca: Path


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, people: People) -> Kept:
    root = tmp_path_factory.mktemp("kept")
    var = root / "var"
    settings = Settings(database_url=f"sqlite:///{var}/epoa.sqlite", var_dir=var)
    with opened(settings, root) as audited:
        tell(audited, people)
        audited.log.catch_up()
        export_to(root / "export.jsonl", audited.registry, audited.db, ORIGIN)
    ca = root / "ca.pem"
    ca.write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
    return Kept(var, root / "export.jsonl", ca)


def epoa(cwd: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env.update(
        {"EPOA_LOG_LEVEL": "WARNING", **{f"EPOA_{k.upper()}": v for k, v in settings.items()}}
    )
    return subprocess.run(
        [EPOA, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def store_copy(kept: Kept, tmp_path: Path) -> Path:
    """A copy of the store in `tmp_path/var`, where `epoa` looks by default."""
    shutil.copytree(kept.var, tmp_path / "var")
    return tmp_path / "var" / "epoa.sqlite"


def records(store: Path) -> int:
    with sqlite3.connect(store) as conn:
        return int(conn.execute("SELECT count(*) FROM stored_events").fetchone()[0])


def test_two_records_with_their_bodies_swapped_are_undecodable_and_the_audit_goes_on(
    kept: Kept, tmp_path: Path
) -> None:
    store = store_copy(kept, tmp_path)
    issued = rowid_of(store, "PowerOfAttorney.Issued", 2)
    swap_states(store, issued - 1, issued)  # the document accepted before it
    run = epoa(tmp_path, "audit", "verify", trusted_ca=str(kept.ca))
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    undecodable = [line for line in run.stdout.splitlines() if line.startswith("undecodable")]
    assert [f"@{issued - 1}:" in undecodable[0], f"@{issued}:" in undecodable[1]] == [True, True]
    assert "PowerOfAttorney.Issued: the body has no " in undecodable[1]
    summary = verdict_of(run.stdout)
    assert summary.startswith(f"{records(store)} records verified") and summary.endswith("DAMAGED")


def test_a_body_resealed_with_a_field_of_another_type_is_undecodable_not_a_crash(
    kept: Kept, tmp_path: Path
) -> None:
    store = store_copy(kept, tmp_path)
    issued = rowid_of(store, "PowerOfAttorney.Issued", 1)
    reseal(store, tmp_path / "var" / "seal-key.pem", issued, principal="900101300017")
    run = epoa(tmp_path, "audit", "verify", trusted_ca=str(kept.ca))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"@{issued}: PowerOfAttorney.Issued: the body's principal is a str" in run.stdout
    assert verdict_of(run.stdout).endswith("DAMAGED")


def export_lines(kept: Kept) -> list[dict[str, Any]]:
    return [json.loads(line) for line in kept.export.read_text().splitlines()]


def write_lines(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_a_file_that_is_no_export_is_refused_in_one_line(kept: Kept, tmp_path: Path) -> None:
    table = tmp_path / "records.csv"
    table.write_text("position,originator_id\n1,abc\n")
    run = epoa(tmp_path, "audit", "verify", "--export", str(table), trusted_ca=str(kept.ca))
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [f"epoa: {table}: not an epoa audit export " + HEADER]


def test_damage_within_an_export_is_a_finding_naming_its_line(kept: Kept, tmp_path: Path) -> None:
    lines: list[dict[str, Any] | str] = [*export_lines(kept)]
    records = [n for n, x in enumerate(lines) if isinstance(x, dict) and x["type"] == "record"]
    cut, stateless, garbled = records[2], records[5], records[8]
    lines[cut] = json.dumps(lines[cut])[:90]
    del lines[stateless]["state"]  # type: ignore[union-attr]
    lines[garbled]["state"] = "not base64!"  # type: ignore[index]
    export = write_lines(tmp_path / "export.jsonl", lines[:-1])  # and no end line
    run = epoa(tmp_path, "audit", "verify", "--export", str(export), trusted_ca=str(kept.ca))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    found = [line for line in run.stdout.splitlines() if line.startswith("bad-export-line")]
    assert [f"line {n + 1}: " in found[i] for i, n in enumerate((cut, stateless, garbled))] == [
        True
    ] * 3
    assert "cut short" in found[0] and "without 'state'" in found[1] and "base64" in found[2]
    assert "the export has no end line" in found[3]
    assert verdict_of(run.stdout).endswith("DAMAGED")


def test_record_lines_out_of_log_order_in_an_export_are_named_by_line(
    kept: Kept, tmp_path: Path
) -> None:
    """Leaf i is the i-th record by position: an export whose lines are not in that order
    (two positions swapped, a record repeated at the end) says two orders at once."""
    lines = export_lines(kept)
    records = [n for n, x in enumerate(lines) if x["type"] == "record"]
    at = next(
        i
        for i in range(len(records) - 1)
        if lines[records[i]]["originator_id"] != lines[records[i + 1]]["originator_id"]
    )
    first, second = lines[records[at]], lines[records[at + 1]]
    first["position"], second["position"] = second["position"], first["position"]
    export = write_lines(tmp_path / "export.jsonl", [*lines])
    run = epoa(tmp_path, "audit", "verify", "--export", str(export), trusted_ca=str(kept.ca))
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.splitlines()[0] == (
        f"bad-export-line: {second['originator_id']} v{second['version']} @{second['position']}: "
        f"export.jsonl line {records[at + 1] + 1}: position {second['position']} comes after "
        f"position {first['position']}: the records are not in log order"
    )
    lines = export_lines(kept)
    repeated = lines[records[0]]
    lines[-1]["records"] += 1
    export = write_lines(tmp_path / "export.jsonl", [*lines[:-1], repeated, lines[-1]])
    run = epoa(tmp_path, "audit", "verify", "--export", str(export), trusted_ca=str(kept.ca))
    assert run.returncode == 1, run.stdout + run.stderr
    assert (
        f"export.jsonl line {len(lines)}: position {repeated['position']} comes after"
        in (run.stdout.splitlines()[0])
    )


def test_an_edited_readable_copy_in_an_export_is_named_field_and_line(
    kept: Kept, tmp_path: Path
) -> None:
    lines = export_lines(kept)
    at = next(n for n, x in enumerate(lines) if str(x.get("event")).endswith(".Terminated"))
    assert lines[at]["payload"]["reason"] == "case_concluded"
    lines[at]["payload"]["reason"] = "revoked_by_principal"
    export = write_lines(tmp_path / "export.jsonl", [*lines])
    run = epoa(tmp_path, "audit", "verify", "--export", str(export), trusted_ca=str(kept.ca))
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.splitlines()[0] == (
        f"readable-copy-changed: {lines[at]['originator_id']} v2 @{lines[at]['position']}: "
        f'export.jsonl line {at + 1}: the readable payload.reason is "revoked_by_principal"; '
        'the sealed state says "case_concluded"'
    )


def test_a_store_with_a_body_no_event_has_is_exported_and_the_line_says_so(
    kept: Kept, tmp_path: Path
) -> None:
    store = store_copy(kept, tmp_path)
    revoked = rowid_of(store, "PowerOfAttorney.Revoked")
    reseal(store, tmp_path / "var" / "seal-key.pem", revoked, evidence="signed, trust me")
    exported = epoa(tmp_path, "audit", "export", "history.jsonl")
    assert exported.returncode == 0, exported.stderr
    line = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[revoked + 1])
    assert "the body's evidence is a str" in line["undecodable"]
    run = epoa(tmp_path, "audit", "verify", "--export", "history.jsonl", trusted_ca=str(kept.ca))
    assert run.returncode == 1 and "undecodable" in run.stdout, run.stdout + run.stderr


def test_a_store_with_a_checkpoint_row_no_head_can_be_is_exported_and_the_line_says_so(
    kept: Kept, tmp_path: Path
) -> None:
    store = store_copy(kept, tmp_path)
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE audit_checkpoints SET root_hash = 'not hex'")
    exported = epoa(tmp_path, "audit", "export", "history.jsonl")
    assert exported.returncode == 0, exported.stderr
    [line] = [
        x
        for x in export_lines(Kept(kept.var, tmp_path / "history.jsonl", kept.ca))
        if x["type"] == "checkpoint"
    ]
    assert line["root_hash"] == "not hex" and line["note"].startswith(ORIGIN)
    run = epoa(tmp_path, "audit", "verify", "--export", "history.jsonl", trusted_ca=str(kept.ca))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "bad-export-line: the log @24: history.jsonl line 2: a checkpoint that cannot be" in (
        run.stdout
    )


def test_an_export_verified_on_an_auditors_empty_machine_makes_no_files_nor_a_ca_of_its_own(
    kept: Kept, tmp_path: Path
) -> None:
    shutil.copy(kept.export, tmp_path / "export.jsonl")
    run = epoa(tmp_path, "audit", "verify", "--export", "export.jsonl")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-2:] == [
        f"{len(export_lines(kept)) - 3} records verified; 1 checkpoint(s) compared; "
        "0 finding(s); INTACT",
        "not checked: signed documents (evidence): no trust store; set EPOA_TRUSTED_CA to "
        "check them",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.jsonl"]


def test_an_audit_of_a_store_writes_no_api_keys_and_makes_no_key_or_ca(
    kept: Kept, tmp_path: Path
) -> None:
    store_copy(kept, tmp_path)
    held = sorted(p.name for p in (tmp_path / "var").iterdir())
    unchecked = epoa(tmp_path, "audit", "verify")
    assert unchecked.returncode == 0 and "not checked: signed documents" in unchecked.stdout
    checked = epoa(tmp_path, "audit", "verify", trusted_ca=str(kept.ca))
    assert checked.returncode == 0 and "not checked" not in checked.stdout
    assert epoa(tmp_path, "audit", "export", "history.jsonl").returncode == 0
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == held
    (tmp_path / "var" / "seal-key.pem").unlink()
    keyless = epoa(tmp_path, "audit", "verify", trusted_ca=str(kept.ca))
    assert keyless.returncode == 2 and "no seal key" in keyless.stderr
    assert not (tmp_path / "var" / "seal-key.pem").exists()


def public_pem(private_pem: Path, to: Path) -> Path:
    to.write_text(pem_of(SealKey.from_pem(private_pem.read_bytes()).public_key))
    return to


def test_an_auditor_verifies_the_store_with_the_public_keys_alone(
    kept: Kept, tmp_path: Path
) -> None:
    """No private seal key where the audit runs: the seals are checked against the public
    keys the auditor holds (`GET /v1/audit/keys`), and those of another service fail."""
    store_copy(kept, tmp_path)
    private = tmp_path / "var" / "seal-key.pem"
    keys = public_pem(private, tmp_path / "keys.pem")
    private.rename(tmp_path / "elsewhere.pem")
    run = epoa(tmp_path, "audit", "verify", "--keys", str(keys), trusted_ca=str(kept.ca))
    assert run.returncode == 0, run.stdout + run.stderr
    assert verdict_of(run.stdout).endswith("INTACT")
    assert not private.exists()
    other = tmp_path / "other.pem"
    other.write_bytes(SealKey.generate().to_pem())
    foreign = epoa(
        tmp_path,
        "audit",
        "verify",
        "--keys",
        str(public_pem(other, tmp_path / "other-public.pem")),
        trusted_ca=str(kept.ca),
    )
    assert foreign.returncode == 1 and verdict_of(foreign.stdout).endswith("DAMAGED")
    assert "unknown key" in foreign.stdout


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgresql://postgres@127.0.0.1:1/epoa", "Connection refused"),
        ("postgresql://postgres@127.0.0.1:5432/epoa_no_such_database", "does not exist"),
    ],
)
def test_a_store_that_cannot_be_read_is_no_verdict_exit_2(
    tmp_path: Path, url: str, why: str
) -> None:
    """A scheduled audit must tell an outage from tampering: 1 means damaged."""
    for args in (("audit", "verify"), ("audit", "export", "history.jsonl")):
        run = epoa(tmp_path, *args, database_url=url)
        assert (run.returncode, run.stdout) == (2, ""), (args, run.stderr)
        assert len(run.stderr.splitlines()) == 1 and "cannot be read" in run.stderr, run.stderr
        assert why in run.stderr and "Traceback" not in run.stderr


def test_a_range_that_is_backwards_or_holds_no_record_is_refused_never_intact(
    kept: Kept, tmp_path: Path
) -> None:
    last = records(store_copy(kept, tmp_path))
    witness = tmp_path / "witness.txt"
    witness.write_text("")
    refusals = {
        ("--from", "10", "--to", "5"): "--from 10 is after --to 5",
        ("--from", "0"): "--from 0: positions start at 1",
        ("--from", "-3", "--to", "5"): "--from -3: positions start at 1",
        ("--to", "0"): "--to 0: positions start at 1",
        ("--witness", str(witness), "--from", "2"): "--witness is compared with the whole log",
        ("--from", str(last + 1)): f"no record from position {last + 1} on",
        ("--from", str(last + 5), "--to", str(last + 9)): f"the store's last position is {last}",
        ("--to", str(last + 1)): f"--to {last + 1} is past the store's last position, {last}",
        ("--from", "2", "--to", str(last + 3)): "the records it asks for are not all in the store",
        ("--export", str(kept.export), "--from", "2"): "--from and --to verify positions of",
        ("--witness", "no-such-witness.txt"): "--witness no-such-witness.txt: no readable file",
        ("--receipts", "."): "--receipts .: no readable file",
        ("--keys", "no-such-keys.pem"): "--keys no-such-keys.pem: no readable file",
        ("--export", "no-such-export.jsonl"): "--export no-such-export.jsonl: no readable",
    }
    for args, words in refusals.items():
        run = epoa(tmp_path, "audit", "verify", *args, trusted_ca=str(kept.ca))
        assert (run.returncode, run.stdout) == (2, ""), (args, run.stdout)
        assert len(run.stderr.splitlines()) == 1 and words in run.stderr, (args, run.stderr)
    inside = epoa(tmp_path, "audit", "verify", "--from", "3", "--to", "5", trusted_ca=str(kept.ca))
    assert inside.returncode == 0 and inside.stdout.startswith("3 records verified")


def test_a_seal_key_replaced_and_every_record_resealed_is_caught_by_the_witness_and_the_keys(
    kept: Kept, tmp_path: Path
) -> None:
    """Seals, chains and the audit log made again with an insider's key hold together; only
    what was kept outside (the witness, the published keys) tells the history is not the
    one the service's key sealed, and says so."""
    store = store_copy(kept, tmp_path)
    published = tmp_path / "keys.pem"
    genuine = SealKey.from_pem((tmp_path / "var" / "seal-key.pem").read_bytes())
    published.write_text(pem_of(genuine.public_key))
    insider = SealKey.generate()
    reseal_all(store, insider)
    (tmp_path / "var" / "seal-key.pem").write_bytes(insider.to_pem())
    settings = Settings(database_url=f"sqlite:///{store}", var_dir=tmp_path / "var")
    with opened(settings, tmp_path) as audited:
        audited.log.catch_up()

    run = epoa(tmp_path, "audit", "verify", trusted_ca=str(kept.ca))
    assert run.returncode == 0 and verdict_of(run.stdout).endswith("INTACT"), run.stdout

    witness = kept.var.parent / "witness.txt"
    run = epoa(tmp_path, "audit", "verify", "--witness", str(witness), trusted_ca=str(kept.ca))
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"bad-witness: the log: {witness} note 1: checkpoint: no signature by a trusted key" in (
        run.stdout
    )
    assert f"signed by {ORIGIN!r} key {key_id(ORIGIN, genuine.public_key).hex()}" in run.stdout

    run = epoa(tmp_path, "audit", "verify", "--keys", str(published), trusted_ca=str(kept.ca))
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"unknown-key {records(store)}" in verdict_of(run.stdout)


def test_a_witness_file_with_a_line_cut_short_is_a_bad_witness_finding(
    kept: Kept, tmp_path: Path
) -> None:
    notes = [x["note"] for x in export_lines(kept) if x["type"] == "checkpoint"]
    witness = tmp_path / "witness.jsonl"
    witness.write_text(json.dumps({"note": notes[0]}) + "\n" + json.dumps({"note": notes[0]})[:40])
    run = epoa(tmp_path, "audit", "verify", "--export", str(kept.export), "--witness", str(witness))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert [line.split(":")[0] for line in run.stdout.splitlines()[:-2]] == ["bad-witness"]
    assert f"{witness} note 2: " in run.stdout


def test_a_witness_file_that_holds_no_checkpoint_is_said_to_have_been_compared_with_nothing(
    kept: Kept, tmp_path: Path
) -> None:
    """An empty witness (a shipper that never ran, the wrong file) proves nothing: INTACT
    then means what it means without one, and the summary says so."""
    store_copy(kept, tmp_path)
    witness = tmp_path / "witness.txt"
    witness.write_text("")
    for source in ((), ("--export", str(kept.export))):
        run = epoa(
            tmp_path, "audit", "verify", *source, "--witness", str(witness), trusted_ca=str(kept.ca)
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert (
            f"not checked: --witness {witness}: it holds no checkpoint that verifies, so "
            "nothing was compared with it"
        ) in run.stdout.splitlines()


def test_a_saved_checkpoint_whose_size_or_root_is_not_its_note_s_is_a_bad_witness(
    kept: Kept, tmp_path: Path
) -> None:
    """A saved `GET /v1/audit/checkpoints/latest` is believed for what its note signs only
    when what it says beside the note is the same."""
    note = next(x["note"] for x in export_lines(kept) if x["type"] == "checkpoint")
    size, root = int(note.split("\n")[1]), base64.b64decode(note.split("\n")[2]).hex()
    saved = {"tree_size": size, "root_hash": root, "note": note}
    witness = tmp_path / "witness.jsonl"
    lines = [
        saved,
        {**saved, "tree_size": size + 5},
        {**saved, "root_hash": "00" * 32},
        {**saved, "tree_size": float(size)},  # a size is a whole number, as the API writes it
    ]
    witness.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run = epoa(tmp_path, "audit", "verify", "--export", str(kept.export), "--witness", str(witness))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    found = [line for line in run.stdout.splitlines() if line.startswith("bad-witness")]
    assert len(found) == 3, run.stdout
    assert f"note 4: tree_size {float(size)} is not the signed size" in found[2]
    assert f"note 2: tree_size {size + 5} is not the signed size {size}" in found[0]
    assert "note 3: root_hash '00" in found[1] and "is not the signed root" in found[1]


def test_a_receipts_file_that_is_not_text_is_a_bad_receipt_finding(
    kept: Kept, tmp_path: Path
) -> None:
    receipts = tmp_path / "receipts.jsonl"
    receipts.write_bytes(b'{"receipt": \xff\xfe}\n')
    run = epoa(
        tmp_path, "audit", "verify", "--export", str(kept.export), "--receipts", str(receipts)
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stdout.startswith("bad-receipt: the log: receipts.jsonl line 1: not a receipt")


def verdict_of(stdout: str) -> str:
    """The summary line (`... records verified; ...; INTACT|DAMAGED`); "not checked" lines
    may follow it."""
    return next(line for line in stdout.splitlines() if " records verified; " in line)
