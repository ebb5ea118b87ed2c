"""Signed tree heads in the C2SP checkpoint / signed-note format."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.checkpoint import (
    Checkpoint,
    CheckpointError,
    key_id,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
    sign_note,
    verifier_key,
    verify_checkpoint,
)
from domain.merkle import leaf_hash, root

ORIGIN = "registry.example/epoa/audit"
ROOT = root([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
TRUSTED = {ORIGIN: KEY.public_key()}

# The example key and note of golang.org/x/mod/sumdb/note (note_test.go), which every
# Go tlog tool and witness is built on: matching it byte for byte is the interop check.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_KEY = Ed25519PrivateKey.from_private_bytes(base64.b64decode(GO_SKEY.split("+", 4)[4])[1:])


def _signed(size: int = 3, **kwargs: object) -> str:
    return sign_checkpoint(ORIGIN, size, ROOT, KEY, **kwargs)  # type: ignore[arg-type]


def test_a_signed_checkpoint_verifies_and_reads_back() -> None:
    text = _signed()
    body, signature_line = text.split("\n\n")
    assert body == f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}"
    assert signature_line.startswith(f"\u2014 {ORIGIN} ")
    checkpoint = verify_checkpoint(text, TRUSTED, origin=ORIGIN)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 3, ROOT)
    assert checkpoint.extensions == ()
    assert checkpoint.signatures[0].key_id == key_id(ORIGIN, KEY.public_key())
    assert verify_checkpoint(text.encode(), TRUSTED) == checkpoint


def test_an_empty_tree_and_extension_lines_round_trip() -> None:
    text = sign_checkpoint(ORIGIN, 0, root([]), KEY, extensions=["time 2025-01-31T12:00:00Z"])
    checkpoint = verify_checkpoint(text, TRUSTED)
    assert checkpoint.size == 0 and checkpoint.root == root([])
    assert checkpoint.extensions == ("time 2025-01-31T12:00:00Z",)
    assert checkpoint.note_text() + "\n" == text.split("\u2014")[0]


@pytest.mark.parametrize(
    ("old", "new"),
    [("\n3\n", "\n4\n"), ("registry", "Registry"), ("=\n", "=\nextra\n")],
)
def test_a_changed_body_is_refused(old: str, new: str) -> None:
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(_signed().replace(old, new, 1), TRUSTED)


def test_a_changed_root_hash_is_refused() -> None:
    text = _signed()
    encoded = base64.b64encode(ROOT).decode()
    flipped = base64.b64encode(bytes([ROOT[0] ^ 1]) + ROOT[1:]).decode()
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(text.replace(encoded, flipped), TRUSTED)


def test_a_checkpoint_signed_by_another_key_under_the_same_name_is_refused() -> None:
    forged = sign_checkpoint(ORIGIN, 3, ROOT, OTHER_KEY)
    with pytest.raises(CheckpointError, match="no signature by a trusted key"):
        verify_checkpoint(forged, TRUSTED)


def test_a_forged_signature_carrying_the_trusted_key_id_is_refused() -> None:
    text = _signed()
    head, encoded = text.rstrip("\n").rsplit(" ", 1)
    raw = base64.b64decode(encoded)
    forged = OTHER_KEY.sign(parse_checkpoint(text).note_text().encode())
    tampered = f"{head} {base64.b64encode(raw[:4] + forged).decode()}\n"
    with pytest.raises(CheckpointError, match="bad signature"):
        verify_checkpoint(tampered, TRUSTED)


def test_a_checkpoint_under_an_unknown_key_name_is_refused() -> None:
    with pytest.raises(CheckpointError, match="no signature by a trusted key"):
        verify_checkpoint(_signed(key_name="someone.else/log"), TRUSTED)
    with pytest.raises(CheckpointError):
        verify_checkpoint(_signed(), {})


def test_a_checkpoint_of_another_origin_is_refused_when_the_origin_is_pinned() -> None:
    text = sign_checkpoint("registry.example/other", 3, ROOT, KEY, ORIGIN)
    assert verify_checkpoint(text, TRUSTED).origin == "registry.example/other"
    with pytest.raises(CheckpointError, match="expected"):
        verify_checkpoint(text, TRUSTED, origin=ORIGIN)


def test_unknown_cosignatures_are_ignored_and_retired_keys_still_verify() -> None:
    cosigned = _signed() + sign_note("x\n", OTHER_KEY, "witness.example").split("\n\n")[1]
    assert verify_checkpoint(cosigned, TRUSTED).size == 3
    rotated = {ORIGIN: [OTHER_KEY.public_key(), KEY.public_key()]}
    assert verify_checkpoint(_signed(), rotated).size == 3


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a checkpoint",
        f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}\n\n",
        f"{ORIGIN}\n03\nAAAA\n\n\u2014 k AAAAAAAA\n",
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(text)
    with pytest.raises(CheckpointError):
        verify_checkpoint(text, TRUSTED)


BODY = f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}\n"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n3\n", "\n03\n"),
        ("\n3\n", "\n-3\n"),
        ("\n3\n", "\n+3\n"),
        ("\n3\n", "\n\uff13\n"),
        ("\n3\n", "\n18446744073709551616\n"),
        ("\n3\n", "\n\n"),
        ("\n3\n", "\n3\n\n"),
        (ORIGIN + "\n", ""),
        ("=\n", "\n"),
        ("=\n", "=\n\n"),
        ("=\n", "\n\n"),
        (base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[:31]).decode()),
        (base64.b64encode(ROOT).decode(), base64.b64encode(ROOT).decode().rstrip("=")),
        (base64.b64encode(ROOT).decode(), ROOT.hex()),
    ],
)
def test_a_validly_signed_text_that_is_not_a_checkpoint_is_refused(old: str, new: str) -> None:
    text = sign_note(BODY.replace(old, new, 1), KEY, ORIGIN)
    with pytest.raises(CheckpointError) as refused:
        verify_checkpoint(text, TRUSTED)
    assert "signature" not in str(refused.value)
    with pytest.raises(CheckpointError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("=\n", "=\n\r\n"),
        ("=\n", "=\x00\n"),
        ("\n\n", "\n"),
        ("\u2014 ", "- "),
        ("\u2014 ", "\u2014  "),
        (f"\u2014 {ORIGIN}", f"\u2014 {ORIGIN}+x"),
        (f"\u2014 {ORIGIN}", "\u2014 a\u00a0b"),
        ("=\n\n", "=\n\n\u2014 k ****\n"),
        ("=\n\n", "=\n\n\u2014 k AAAA\n"),
        ("=\n\n", "=\n\n\u2014 k AAAAAA==\n"),
        ("=\n\n", "=\n\n\u2014 k AAAAAAB=\n"),
    ],
)
def test_a_mangled_signed_note_is_refused(old: str, new: str) -> None:
    mangled = _signed().replace(old, new, 1)
    assert mangled != _signed()
    with pytest.raises(CheckpointError) as refused:
        verify_checkpoint(mangled, TRUSTED)
    assert "bad signature" not in str(refused.value)


def test_a_missing_final_newline_or_invalid_utf8_is_refused() -> None:
    with pytest.raises(CheckpointError):
        verify_checkpoint(_signed()[:-1], TRUSTED)
    with pytest.raises(CheckpointError):
        verify_checkpoint(b"\xff" + _signed().encode(), TRUSTED)
    with pytest.raises(CheckpointError):
        verify_checkpoint(_signed() + "\u2014 x AAAAAAA=\n" * 100, TRUSTED)


def test_what_cannot_be_a_checkpoint_is_not_signed() -> None:
    for origin, size, key_name in [("", 1, "k"), ("a\nb", 1, "k"), ("o", -1, "k"), ("o", 1, "a b")]:
        with pytest.raises(ValueError):
            sign_checkpoint(origin, size, ROOT, KEY, key_name)
    with pytest.raises(ValueError):
        sign_checkpoint(ORIGIN, 1, ROOT[:31], KEY)
    with pytest.raises(ValueError):
        sign_checkpoint(ORIGIN, 1, ROOT, KEY, extensions=[""])


def test_key_ids_and_signatures_match_the_go_signed_note_reference() -> None:
    assert verifier_key("PeterNeumann", GO_KEY.public_key()) == GO_VKEY
    assert sign_note(GO_TEXT, GO_KEY, "PeterNeumann") == GO_NOTE
    text, signatures = open_note(GO_NOTE, {"PeterNeumann": GO_KEY.public_key()})
    assert text == GO_TEXT and signatures[0].key_id.hex() == "c74f20a3"
    with pytest.raises(CheckpointError):
        open_note(
            GO_NOTE.replace("cryptography", "cryptographY"), {"PeterNeumann": GO_KEY.public_key()}
        )


def test_a_parsed_checkpoint_is_not_verified() -> None:
    checkpoint = parse_checkpoint(sign_checkpoint(ORIGIN, 3, ROOT, OTHER_KEY))
    assert isinstance(checkpoint, Checkpoint) and checkpoint.size == 3
