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
        return cls(read_keys(path))

    def role_of(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for known, role in self._digests:
            if hmac.compare_digest(known, digest):
                found = role
        return found


def read_keys(path: Path) -> dict[str, str]:
    """The keys file as a mapping of key to role; ValueError naming the file and the fault."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"EPOA_API_KEYS={path}: cannot read it: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"EPOA_API_KEYS={path}: cannot read it as JSON: {error}") from None
    fault = _fault(data)
    if fault is not None:
        raise ValueError(f"EPOA_API_KEYS={path}: {fault}")
    return dict(data)


def _fault(data: object) -> str | None:
    """What makes the file's content no set of keys. No keys at all would refuse every
    request; an empty key would let `Authorization: Bearer ` in with its role."""
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return "a JSON object mapping API key to role is expected"
    if not data:
        return "it holds no key, so every request would be refused"
    if any(not key.strip() for key in data):
        return "a key is empty or blank, so a request with no key would be let in"
    bad = sorted({role for role in data.values() if role not in ROLES})
    return f"unknown role(s) {bad}; roles are {ROLES}" if bad else None
