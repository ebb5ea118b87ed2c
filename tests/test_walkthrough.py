"""The README's walk-through, pasted by a newcomer: `epoa serve` on the embedded default,
`epoa sign` with the demo keys, curl; then `epoa audit verify` finds the store intact."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.embedded import EPOA, clean_env, embedded_serve

ROOT = Path(__file__).resolve().parents[1]


def readme_by_hand() -> str:
    """The README's walk-through by hand: the shell block after "By hand"."""
    text = (ROOT / "README.md").read_text().split("By hand, from the same directory:", 1)[1]
    return text.split("```sh\n", 1)[1].split("\n```", 1)[0]


def readme_backup_blocks() -> list[str]:
    """The shell blocks of the README's "Back up and restore the embedded default"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Back up and restore the embedded default", 1)[1].split("\n## ")[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)


def pasted(block: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A README block run as pasted in `cwd`, with the project's `epoa` on PATH."""
    return subprocess.run(
        ["bash", "-e", "-c", block],
        cwd=cwd,
        env={**env, "PATH": f"{Path(EPOA).parent}:{env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def issued(walk: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"^issued (\S+) in case", walk.stdout, re.MULTILINE)
    assert found is not None, walk.stdout
    return found[1]


def walkthrough(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "walkthrough.sh")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_walkthrough_works_on_the_embedded_default(tmp_path: Path) -> None:
    env = clean_env()
    log = tmp_path / "serve.log"
    with embedded_serve(tmp_path, log, env) as api:
        assert "DEMO CA" in log.read_text()
        walk = walkthrough(tmp_path, {**env, "API": api, "EPOA": EPOA})
        assert walk.returncode == 0, walk.stdout + walk.stderr
        assert walk.stdout.strip().endswith("terminated case_concluded")
        assert '"authorized":true' in walk.stdout
        # Pasted again, it walks a case of its own: the first one has concluded.
        again = walkthrough(tmp_path, {**env, "API": api, "EPOA": EPOA})
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.strip().endswith("terminated case_concluded")
        # A step the registry refuses stops the walk with the problem it answered.
        concluded = walk.stdout.split("in case ", 1)[1].split()[0]
        refused = walkthrough(tmp_path, {**env, "API": api, "EPOA": EPOA, "CASE": concluded})
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "urn:epoa:problem:case-concluded" in refused.stderr
        assert "Traceback" not in refused.stderr
        by_hand = subprocess.run(
            ["bash", "-c", readme_by_hand().replace("http://127.0.0.1:8000", api)],
            cwd=tmp_path,
            env={**env, "PATH": f"{Path(EPOA).parent}:{env['PATH']}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
        assert '"status":"active"' in by_hand.stdout and '"authorized":true' in by_hand.stdout
    audit = subprocess.run(
        [EPOA, "audit", "verify"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "INTACT" in audit.stdout


def test_the_readmes_backup_of_the_embedded_default_is_whole_and_restores(
    tmp_path: Path,
) -> None:
    """The store keeps its latest records in `epoa.sqlite-wal` while it runs: the README's
    backup, taken while `epoa serve` writes, verifies INTACT, and restored in the store's
    place it serves what was recorded before the copy and nothing after."""
    env = clean_env()
    backup, restore = readme_backup_blocks()
    with embedded_serve(tmp_path, tmp_path / "serve.log", env) as api:
        before = walkthrough(tmp_path, {**env, "API": api, "EPOA": EPOA})
        assert before.returncode == 0, before.stdout + before.stderr
        assert (tmp_path / "var" / "epoa.sqlite-wal").stat().st_size > 0
        made = pasted(backup, tmp_path, env)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "INTACT" in made.stdout
        after = walkthrough(tmp_path, {**env, "API": api, "EPOA": EPOA})
        assert after.returncode == 0, after.stdout + after.stderr
    copied = int(made.stdout.split(" records verified")[0].rsplit(maxsplit=1)[-1])
    assert copied > 0
    restored = pasted(restore, tmp_path, env)
    assert restored.returncode == 0, restored.stderr
    audit = pasted("epoa audit verify", tmp_path, env)
    assert audit.returncode == 0 and f"{copied} records verified" in audit.stdout, audit.stdout
    keys = json.loads((tmp_path / "var" / "api-keys.json").read_text())
    court = next(key for key, role in keys.items() if role == "court")
    with embedded_serve(tmp_path, tmp_path / "again.log", env) as api:

        def status(poa_id: str) -> int:
            request = urllib.request.Request(
                f"{api}/v1/powers-of-attorney/{poa_id}",
                headers={"Authorization": f"Bearer {court}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as error:
                return error.code

        assert status(issued(before)) == 200
        assert status(issued(after)) == 404
