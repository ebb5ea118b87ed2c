"""The runbook's commands as an operator pastes them: each shell block is valid shell, each
`docker compose run` of the image runs an `epoa` command that exists with those options
(and the Python it runs does what it says), and each service named is in the compose file."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from epoa.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "docs" / "runbook.md"
SERVICES = ("api", "projector", "consumer", "db-init")
RUN_OPTIONS_WITH_VALUE = {"-v", "--volume", "-e", "--env", "--entrypoint", "-w", "--workdir"}


def shell_blocks() -> list[str]:
    return re.findall(r"^ *```sh\n(.*?)^ *```$", RUNBOOK.read_text(), re.MULTILINE | re.DOTALL)


def inline_runs() -> list[str]:
    """The `docker compose run ...` commands written inline, in backticks."""
    return re.findall(r"`(docker compose run [^`]+)`", RUNBOOK.read_text())


def compose_runs() -> list[list[str]]:
    lines = [line.strip() for block in shell_blocks() for line in block.splitlines()]
    commands = [line for line in lines if line.startswith("docker compose run ")] + inline_runs()
    # What follows a redirection is the shell's, not the command's.
    return [shlex.split(re.split(r" [<>] ", command)[0]) for command in commands]


def split_run(words: list[str]) -> tuple[dict[str, str], str, list[str]]:
    """`docker compose run [OPTIONS] SERVICE ARGS...` as (options, service, args)."""
    options: dict[str, str] = {}
    rest = words[3:]
    while rest[0].startswith("-"):
        option = rest.pop(0)
        options[option] = rest.pop(0) if option in RUN_OPTIONS_WITH_VALUE else ""
    return options, rest[0], rest[1:]


def test_every_command_is_valid_shell_on_one_line() -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 6
    for block in blocks:
        checked = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
        assert checked.returncode == 0, block + checked.stderr
        for line in block.splitlines():
            assert line.strip().split()[0] in ("docker", "openssl", "chmod"), line
    # A command written inline and wrapped would be pasted as two commands.
    for inline in re.findall(r"`((?:docker|openssl|\.venv)[^`]*)`", RUNBOOK.read_text()):
        assert "\n" not in inline, inline


def test_every_compose_run_of_the_image_is_an_epoa_command_it_has() -> None:
    runs = compose_runs()
    assert len(runs) >= 5
    compose = (ROOT / "docker-compose.yml").read_text()
    for words in runs:
        options, service, args = split_run(words)
        assert service in SERVICES and f"\n  {service}:\n" in compose, words
        if "--entrypoint" in options or not args:
            continue  # the service's own command (db-init), or another program
        try:
            _parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"`epoa {' '.join(args)}` is no command of epoa: {words}")


def test_the_runbooks_seal_key_command_prints_a_seal_key(tmp_path: Path) -> None:
    from domain.seal import SealKey

    (words,) = [w for w in compose_runs() if split_run(w)[0].get("--entrypoint") == "python"]
    done = subprocess.run(
        [sys.executable, *split_run(words)[2]], capture_output=True, cwd=tmp_path, check=True
    )
    assert SealKey.from_pem(done.stdout).key_id


def test_every_secret_made_is_readable_by_the_containers_users() -> None:
    """Compose mounts a secret's file as the host has it, and the services run as users of
    their own (uid 10001): a key made `chmod 600` by the host's user stopped every process."""
    modes = re.findall(r"^\s*chmod (\d{3,4}) (secrets/\S+)$", "\n".join(shell_blocks()), re.M)
    assert modes
    for mode, path in modes:
        assert int(mode[-1]) & 4, f"{path} would be unreadable in the containers: chmod {mode}"
