"""Strict JSON parsing and RFC 8785 (JCS) canonical bytes: what a signature covers.

A signer signs the canonical bytes of a document, so two parsers must never disagree about
what a document says. Duplicate member names are the classic way to make them disagree
(one parser keeps the first value, another the last), hence they are refused at any depth.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from domain.errors import InvalidInputError, MalformedJsonError


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise MalformedJsonError(f"duplicate JSON member name: {key!r}")
        obj[key] = value
    return obj


def _refuse_constant(name: str) -> Any:
    raise MalformedJsonError(f"JSON value not allowed: {name}")


def parse_json_object(raw: bytes | str) -> dict[str, Any]:
    """Parse a JSON object, refusing duplicate names, NaN/Infinity and non-object tops.
    Bytes are read as UTF-8 (RFC 8259 section 8.1; a byte order mark is ignored, as the
    RFC allows): `json.loads` alone would take UTF-16 and UTF-32 too, guessed from the bytes."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        value = json.loads(
            text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise MalformedJsonError(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedJsonError(f"a JSON object is required, not {type(value).__name__}")
    return value


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 bytes of `obj`; values JCS cannot represent exactly are input errors.

    Refused: NaN and infinities, integers beyond +/-(2**53 - 1) (they would silently lose
    precision in every other JSON implementation), lone surrogates, non-string keys and
    anything that is not a JSON type.

    A document of plain values (objects with ASCII member names, arrays, strings, safe
    integers, true, false, null; no floats) is written by the standard library's encoder,
    whose output for those is JCS's: members sorted by name (for ASCII names code point
    order is UTF-16 order), no white space, the same escapes (the two-character ones, and
    six-character escapes in lower-case hex for the other controls), everything else as
    UTF-8. Anything else, and any failure, goes to `rfc8785`, which also words the refusals.
    """
    if _plain(obj):
        try:
            return _JCS.encode(obj).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):  # lone surrogates, or too deep
            pass
    try:
        return rfc8785.dumps(obj)
    except (TypeError, ValueError, RecursionError) as exc:  # CanonicalizationError is a ValueError
        raise InvalidInputError(f"not representable in canonical JSON: {exc}") from None


_JCS = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))
_SAFE = 2**53 - 1


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether `value` holds only values of exactly the types that `_JCS` writes as JCS."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_SAFE <= value <= _SAFE)
    if depth > 64:
        return False
    if kind is dict:
        return all(type(k) is str and k.isascii() for k in value) and all(
            _plain(v, depth + 1) for v in value.values()
        )
    if kind is list:
        return all(_plain(v, depth + 1) for v in value)
    return False
