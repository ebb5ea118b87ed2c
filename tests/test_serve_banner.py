"""`epoa serve` on the embedded default prints, at every start, each development value it
took under `./var` for a setting left unset (contract, section 7): the store, the seal key,
the API keys and the demo CA."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.support.embedded import clean_env, embedded_serve


def started(tmp_path: Path, name: str) -> tuple[str, str]:
    """What `epoa serve` printed before it answered, and the current seal key's id that
    `GET /v1/audit/keys` names."""
    log = tmp_path / f"{name}.log"
    with (
        embedded_serve(tmp_path, log, clean_env()) as api,
        urllib.request.urlopen(api + "/v1/audit/keys", timeout=10) as answer,
    ):
        keys = json.load(answer)["keys"]
    (current,) = (key["key_id"] for key in keys if key["current"])
    return log.read_text(), current


def test_every_start_prints_the_development_seal_key_beside_the_api_keys_and_the_ca(
    tmp_path: Path,
) -> None:
    """The seal key was only logged (a warning) on the start that made it, and never shown
    again: an operator could not tell which key sealed the store."""
    first, key_id = started(tmp_path, "first")
    again, same = started(tmp_path, "again")
    assert same == key_id
    roles = json.loads((tmp_path / "var" / "api-keys.json").read_text()).values()
    assert sorted(roles) == ["admin", "auditor", "court", "portal"]
    for printed in (first, again):
        lines = printed.splitlines()
        assert "epoa: store sqlite:///var/epoa.sqlite" in lines, printed
        assert f"epoa: DEVELOPMENT seal key var/seal-key.pem (key id {key_id})" in lines
        assert "epoa: DEVELOPMENT mode: API keys in var/api-keys.json:" in lines
        assert "epoa: trusting the DEMO CA var/demo/ca.pem" in printed
