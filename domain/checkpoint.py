"""Signed tree heads of the global audit log, as C2SP checkpoints (signed notes).

A checkpoint commits the service to the Merkle root (`domain.merkle`) of the first `size`
record hashes. We use the C2SP tlog-checkpoint format (c2sp.org/tlog-checkpoint over
c2sp.org/signed-note) rather than an ad-hoc one so that auditors and witnesses can check
our heads with existing tlog tooling and nothing but an Ed25519 public key:

    <origin>
    <tree size, ASCII decimal, no leading zeros>
    <base64 root hash>
    [extension lines]

    — <key name> <base64(4-byte key ID || Ed25519 signature over the text above)>

The key ID is SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4] (signed-note,
signature type 0x01). Verifiers ignore signatures whose name and ID match no trusted key,
so a key can be rotated or witnesses can cosign without breaking older verifiers.

Extension lines: the spec allows opaque, non-empty lines after the root hash but marks
them NOT RECOMMENDED, because log monitors cannot audit them (and ML-DSA cosignatures do
not cover them). `sign_checkpoint` therefore emits none unless asked. A caller that wants
the log key to vouch for *when* a head was signed may pass e.g. `"time 2025-01-31T12:00Z"`;
the usual place for that time is the row that stores the checkpoint. Parsing returns
extension lines verbatim and never interprets them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519_SIGNATURE_TYPE = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100  # signed-note: verifiers must accept at least 16
_MAX_SIZE = 2**64 - 1
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_FORBIDDEN_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")

PublicKeys = Ed25519PublicKey | Iterable[Ed25519PublicKey]
"""The trusted key(s) under one key name: several while a rotated key keeps its name."""


class CheckpointError(Exception):
    """The checkpoint is malformed or not signed by a trusted key: ignore its content."""


@dataclass(frozen=True)
class NoteSignature:
    """One signature line; (key_name, key_id) names the key, the signature is unchecked."""

    key_name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Checkpoint:
    """A tree head. Trust it only as returned by `verify_checkpoint`, not `parse_checkpoint`."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()
    signatures: tuple[NoteSignature, ...] = ()

    def note_text(self) -> str:
        """The signed text: every line of the checkpoint, each ending in a newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(f"{line}\n" for line in lines)


def key_id(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte signed-note key ID of an Ed25519 key under `key_name`."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(key_name.encode() + b"\n" + ED25519_SIGNATURE_TYPE + raw).digest()[:4]


def verifier_key(key_name: str, public_key: Ed25519PublicKey) -> str:
    """`<name>+<hex key ID>+<base64(0x01 || key)>`: the form tlog tools take keys in."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    encoded = _b64encode(ED25519_SIGNATURE_TYPE + raw)
    return f"{key_name}+{key_id(key_name, public_key).hex()}+{encoded}"


def sign_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    private_key: Ed25519PrivateKey,
    key_name: str | None = None,
    *,
    extensions: Sequence[str] = (),
) -> str:
    """Sign the tree head; the key name defaults to the origin, as the spec advises."""
    if type(size) is not int or not 0 <= size <= _MAX_SIZE:
        raise ValueError(f"invalid tree size {size!r}")
    if len(root) != 32:
        raise ValueError("a root hash is 32 bytes")
    for line in (origin, *extensions):
        if not line or "\n" in line:
            raise ValueError(f"checkpoint lines must be non-empty single lines: {line!r}")
    text = Checkpoint(origin, size, bytes(root), tuple(extensions)).note_text()
    return sign_note(text, private_key, origin if key_name is None else key_name)


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """Parse without checking any signature: the result must not be trusted yet."""
    note_text, signatures = _split_note(text)
    return _parse_body(note_text, signatures)


def verify_checkpoint(
    text: str | bytes,
    public_keys: Mapping[str, PublicKeys],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """The checkpoint, once a trusted key has signed it (see `open_note`).

    Pass `origin` to also refuse a head of another log signed with the same key.
    """
    note_text, signatures = open_note(text, public_keys)
    checkpoint = _parse_body(note_text, signatures)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint of {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


def sign_note(text: str, private_key: Ed25519PrivateKey, key_name: str) -> str:
    """A signed note of `text` (which must end in a newline) with one Ed25519 signature."""
    if not _valid_key_name(key_name):
        raise ValueError(f"invalid key name {key_name!r}: empty, or has spaces or '+'")
    if not text.endswith("\n") or _FORBIDDEN_CONTROL.search(text):
        raise ValueError("note text must end in a newline and hold no control characters")
    signature = private_key.sign(text.encode())
    encoded = _b64encode(key_id(key_name, private_key.public_key()) + signature)
    return f"{text}\n{SIGNATURE_PREFIX}{key_name} {encoded}\n"


def open_note(
    note: str | bytes, public_keys: Mapping[str, PublicKeys]
) -> tuple[str, tuple[NoteSignature, ...]]:
    """The note text and all its signature lines, once a trusted key's signature verifies.

    `public_keys` maps a key name to its key, or to several (a rotated key may keep its
    name; the key ID tells them apart), retired ones included so old heads still verify.
    Per signed-note, signatures by unknown keys are skipped, and a failing signature by
    a known key refuses the whole note.
    """
    text, signatures = _split_note(note)
    trusted = {
        (name, key_id(name, key)): key
        for name, keys in public_keys.items()
        for key in ((keys,) if isinstance(keys, Ed25519PublicKey) else keys)
    }
    message = text.encode()
    verified = 0
    for sig in signatures:
        key = trusted.get((sig.key_name, sig.key_id))
        if key is None:
            continue
        try:
            key.verify(sig.signature, message)
        except (InvalidSignature, ValueError):
            raise CheckpointError(f"bad signature by key {sig.key_name!r}") from None
        verified += 1
    if not verified:
        signers = ", ".join(f"{sig.key_name!r} key {sig.key_id.hex()}" for sig in signatures)
        raise CheckpointError(
            f"no signature by a trusted key (signed by {signers}: none of the keys it is "
            "checked against; another log's, or the seal key was replaced since)"
        )
    return text, signatures


def _parse_body(note_text: str, signatures: tuple[NoteSignature, ...]) -> Checkpoint:
    lines = note_text[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise CheckpointError("a checkpoint has origin, size and root hash on non-empty lines")
    origin, size_line, root_line, *extensions = lines
    if not _TREE_SIZE.fullmatch(size_line) or int(size_line) > _MAX_SIZE:
        raise CheckpointError(f"invalid tree size {size_line!r}")
    root = _b64decode(root_line, "root hash")
    if len(root) != 32:
        raise CheckpointError("the root hash is not 32 bytes")
    return Checkpoint(origin, int(size_line), root, tuple(extensions), signatures)


def _split_note(note: str | bytes) -> tuple[str, tuple[NoteSignature, ...]]:
    """Cut a signed note at its last blank line into its text and parsed signatures."""
    try:
        text = (note if isinstance(note, bytes) else note.encode()).decode()
    except UnicodeError:
        raise CheckpointError("a signed note must be valid UTF-8") from None
    if _FORBIDDEN_CONTROL.search(text):
        raise CheckpointError("a signed note must not contain control characters")
    cut = text.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("no blank line between the text and its signatures")
    text, block = text[: cut + 1], text[cut + 2 :]
    if not block.endswith("\n"):
        raise CheckpointError("no signature lines, or the last one lacks its newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"more than {MAX_SIGNATURES} signatures")
    return text, tuple(_parse_signature(line) for line in lines)


def _parse_signature(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise CheckpointError(f"not a signature line: {line[:40]!r}")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not _valid_key_name(name):
        raise CheckpointError(f"invalid signature line: {line[:40]!r}")
    raw = _b64decode(encoded, "signature")
    if len(raw) < 5:
        raise CheckpointError("a signature holds a 4-byte key ID and the signature")
    return NoteSignature(name, raw[:4], raw[4:])


def _valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str, what: str) -> bytes:
    """Strict standard base64: one spelling per value, so signed bytes cannot vary."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise CheckpointError(f"invalid base64 in the {what}") from None
    if _b64encode(raw) != value:
        raise CheckpointError(f"non-canonical base64 in the {what}")
    return raw
