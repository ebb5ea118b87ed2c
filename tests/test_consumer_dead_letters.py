"""What a dead letter says, as a court system's integrator reads it: the README names every
header the service adds, so that a tool reading the dead-letter topic can rely on them."""

from __future__ import annotations

import re
from pathlib import Path

from consumers.case_events import Decision
from consumers.dead_letters import _described, dead_letter_headers

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_names_every_header_a_dead_letter_carries() -> None:
    headers = dead_letter_headers("court.case-events", 2, 17, Decision.poison("validation", "x"))
    _, _, described = _described(b"K" * 2000, b"v", headers)
    names = {name for name, _ in described}
    assert {"epoa.reason", "epoa.detail", "epoa.value.omitted", "epoa.key.omitted"} <= names
    section = README.read_text().split("- **Dead letters**", 1)[1].split("\n- **", 1)[0]
    documented = set(re.findall(r"`(epoa\.[a-z.]+)`", section))
    assert names <= documented, names - documented
