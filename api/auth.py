"""API keys: each key has one role; keys are held only as SHA-256 digests, compared in
constant time, so a memory dump or a timing probe reveals no key."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

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


class RepeatedKeyError(ValueError):
    """A keys file names one key twice; the message gives positions, never the key."""


def parse_keys(text: str) -> Any:
    """The JSON of a keys file. A key given twice is refused: JSON readers keep the last
    role given, so the file would grant another role than the one its reader sees first."""
    return json.loads(text, object_pairs_hook=_pairs_once)


def _pairs_once(pairs: list[tuple[str, object]]) -> dict[str, object]:
    first: dict[str, int] = {}
    for number, (key, _) in enumerate(pairs, start=1):
        if key in first:
            raise RepeatedKeyError(
                f"key #{number} repeats key #{first[key]}: each key has one role; give it once"
            )
        first[key] = number
    return dict(pairs)


def read_keys(path: Path) -> dict[str, str]:
    """The keys file as a mapping of key to role; ValueError naming the file and the fault."""
    try:
        data = parse_keys(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"EPOA_API_KEYS={path}: cannot read it: {error.strerror}") from None
    except RepeatedKeyError as error:
        raise ValueError(f"EPOA_API_KEYS={path}: {error}") from None
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
    for number, key in enumerate(data, start=1):
        if key != key.strip() or not all(" " <= char <= "~" for char in key):
            return (
                f"key #{number} has white space at an end, or a character other than "
                "printable ASCII, which an `Authorization: Bearer` header cannot carry as "
                "it is: no request could present it"
            )
    bad = sorted({role for role in data.values() if role not in ROLES})
    return f"unknown role(s) {bad}; roles are {ROLES}" if bad else None
