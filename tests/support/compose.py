"""The compose file as Docker Compose itself reads it (the pinned binary, no engine)."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"

needs_linux_x86 = pytest.mark.skipif(
    (platform.system(), platform.machine()) != ("Linux", "x86_64"),
    reason="the pinned docker-compose and hadolint binaries are for Linux x86_64",
)


def run(script: str, target: Path) -> subprocess.CompletedProcess[str]:
    """One of `scripts/` on `target`, its output kept."""
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / script), str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def compose_config() -> dict[str, Any]:
    """`docker-compose config` of the compose file, as JSON."""
    run("check-compose.sh", COMPOSE)  # fetches the binary once
    binary = next((ROOT / ".tools").glob("docker-compose-*"))
    done = subprocess.run(
        [str(binary), "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def balancer_config() -> str:
    """The balancer's nginx configuration (`configs.lb`), `$$` read as nginx's `$`."""
    content: str = compose_config()["configs"]["lb"]["content"]
    return content.replace("$$", "$")
