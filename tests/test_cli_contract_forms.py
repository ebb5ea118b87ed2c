"""The commands as section 6 of the contract writes them: `epoa audit export` and
`epoa keys demo` with no argument work, and an export to standard output holds its lines
alone, so that what a pipe receives verifies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from epoa.demo_keys import load_demo
from epoa.dev import ensure_dev_material
from epoa.settings import Settings
from tests.support.people import People
from tests.test_audit_verify import opened, tell

EPOA = str(Path(sys.executable).with_name("epoa"))


def epoa(cwd: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env |= {"EPOA_LOG_LEVEL": "WARNING", **{f"EPOA_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.run(
        [EPOA, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def told(tmp_path_factory: pytest.TempPathFactory, people: People) -> Path:
    """The `var` directory of a told history on SQLite: its store and its seal key."""
    var = tmp_path_factory.mktemp("told") / "var"
    settings = Settings(database_url=f"sqlite:///{var}/epoa.sqlite", var_dir=var)
    with opened(settings, var.parent) as audited:
        tell(audited, people)
        audited.log.catch_up()
    return var


@pytest.mark.parametrize("target", [(), ("-",), ("/dev/stdout",)], ids=["none", "-", "device"])
def test_an_export_to_standard_output_holds_its_lines_alone_and_verifies_intact(
    told: Path, tmp_path: Path, target: tuple[str, ...]
) -> None:
    """The count of what was exported went to standard output after the end line: a piped
    export then failed its own audit (`bad-export-line`, DAMAGED)."""
    shutil.copytree(told, tmp_path / "var")
    exported = epoa(tmp_path, "audit", "export", *target)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert (lines[0]["type"], lines[-1]["type"]) == ("header", "end")
    records = lines[-1]["records"]
    assert records > 0 and f"exported {records} records" in exported.stderr
    (tmp_path / "piped.jsonl").write_text(exported.stdout)
    verified = epoa(tmp_path, "audit", "verify", "--export", "piped.jsonl")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{records} records verified;" in verified.stdout
    assert " 0 finding(s); INTACT" in verified.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piped.jsonl", "var"]


def test_an_export_to_a_file_names_it_and_writes_nothing_else_to_standard_output(
    told: Path, tmp_path: Path
) -> None:
    shutil.copytree(told, tmp_path / "var")
    exported = epoa(tmp_path, "audit", "export", "history.jsonl")
    assert exported.returncode == 0 and exported.stdout == "", exported.stdout
    assert exported.stderr.strip().endswith("to history.jsonl"), exported.stderr
    assert epoa(tmp_path, "audit", "verify", "--export", "history.jsonl").returncode == 0


def test_an_export_to_standard_output_without_a_store_writes_nothing_there(
    tmp_path: Path,
) -> None:
    exported = epoa(tmp_path, "audit", "export")
    assert exported.returncode == 2 and exported.stdout == "", exported.stdout
    assert "no event store at sqlite:///var/epoa.sqlite" in exported.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_demo_keys_without_a_directory_go_where_serve_trusts_them(tmp_path: Path) -> None:
    made = epoa(tmp_path, "keys", "demo")
    assert made.returncode == 0, made.stderr
    demo = load_demo(tmp_path / "var" / "demo")
    assert f"(EPOA_TRUSTED_CA): {Path('var') / 'demo' / 'ca.pem'}" in made.stdout
    assert demo.principal.id in made.stdout
    ca = demo.ca_pem.read_bytes()
    again = epoa(tmp_path, "keys", "demo")
    assert again.returncode == 1 and "var/demo already holds demo keys" in again.stderr
    assert demo.ca_pem.read_bytes() == ca
    trusted, _ = ensure_dev_material(Settings(var_dir=tmp_path / "var"), api_keys=False)
    assert trusted.trusted_ca == demo.ca_pem and demo.ca_pem.read_bytes() == ca
    elsewhere = epoa(tmp_path, "keys", "demo", var_dir="dev")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert load_demo(tmp_path / "dev" / "demo").ca_pem.read_bytes() != ca
