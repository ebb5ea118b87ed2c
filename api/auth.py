"""API keys: each key has one role; keys are held only as SHA-256 digests, compared in
constant time, so a memory dump or a timing probe reveals no key."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

ROLES = ("portal", "court", "auditor", "admin")


class ApiKeys:
    def __init__(self, keys: dict[str, str]) -> None:
        bad = {role for role in keys.values() if role not in ROLES}
        if bad:
            raise ValueError(f"unknown role(s) {sorted(bad)}; roles are {ROLES}")
        self._digests = [(hashlib.sha256(k.encode()).digest(), role) for k, role in keys.items()]

    @classmethod
    def from_path(cls, path: Path) -> ApiKeys:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"{path}: a JSON object mapping API key to role is expected")
        return cls(data)

    def role_of(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for known, role in self._digests:
            if hmac.compare_digest(known, digest):
                found = role
        return found
