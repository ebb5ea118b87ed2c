"""The README's walk-through, pasted by a newcomer: `epoa serve` on the embedded default,
`epoa sign` with the demo keys, curl; then `epoa audit verify` finds the store intact."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.embedded import EPOA, clean_env, embedded_serve

ROOT = Path(__file__).resolve().parents[1]


def readme_by_hand() -> str:
    """The README's walk-through by hand: the shell block after "By hand"."""
    text = (ROOT / "README.md").read_text().split("By hand, from the same directory:", 1)[1]
    return text.split("```sh\n", 1)[1].split("\n```", 1)[0]


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
