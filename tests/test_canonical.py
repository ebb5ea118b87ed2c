"""Strict JSON parsing and RFC 8785 canonical bytes."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.canonical import canonical_bytes, parse_json_object
from domain.errors import InvalidInputError


def test_the_rfc_8785_example_gives_the_published_bytes() -> None:
    # RFC 8785, section 3.2.2: the sample input and its canonical form.
    raw = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()

    assert canonical_bytes(parse_json_object(raw)) == expected


def test_members_are_sorted_by_utf16_code_units() -> None:
    # RFC 8785, section 3.2.3: "\r" < "1" < "\u0080" < "\u00f6" < "\u20ac" < "\U0001f600" < "\ufb33"
    obj = {"\ufb33": 7, "\U0001f600": 6, "\u20ac": 5, "\u00f6": 4, "\u0080": 3, "1": 2, "\r": 1}

    assert list(parse_json_object(canonical_bytes(obj)).values()) == [1, 2, 3, 4, 5, 6, 7]


def test_equal_documents_written_differently_have_the_same_bytes() -> None:
    one = parse_json_object('{"b": [1, 2.0], "a": {"y": "\\u0436", "x": null}}')
    other = parse_json_object('{"a":{"x":null,"y":"ж"},"b":[1,2]}')

    assert canonical_bytes(one) == canonical_bytes(other)


@pytest.mark.parametrize(
    "raw",
    [
        '{"a": 1, "a": 2}',
        '{"a": {"b": 1, "b": 1}}',
        '{"list": [{"iin": "1"}, {"iin": "2", "iin": "3"}]}',
    ],
)
def test_duplicate_member_names_are_refused_at_any_depth(raw: str) -> None:
    with pytest.raises(InvalidInputError, match="duplicate JSON member name"):
        parse_json_object(raw)


@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "42", "null"])
def test_a_top_level_other_than_an_object_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInputError, match="JSON object is required"):
        parse_json_object(raw)


@pytest.mark.parametrize("raw", ["{", b"\xff\xfe{", '{"a": 1} trailing', ""])
def test_malformed_json_is_refused(raw: str | bytes) -> None:
    with pytest.raises(InvalidInputError, match="malformed JSON"):
        parse_json_object(raw)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_bytes_in_another_encoding_than_utf_8_are_malformed(encoding: str) -> None:
    with pytest.raises(InvalidInputError, match="malformed JSON"):
        parse_json_object('{"a": "b"}'.encode(encoding))


def test_utf_8_bytes_are_read_with_or_without_a_byte_order_mark() -> None:
    raw = '{"name": "Жұмабеков"}'.encode()
    assert parse_json_object(raw) == parse_json_object(b"\xef\xbb\xbf" + raw)
    assert parse_json_object(raw) == {"name": "Жұмабеков"}


@pytest.mark.parametrize("raw", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'])
def test_non_finite_numbers_are_refused_when_parsing(raw: str) -> None:
    with pytest.raises(InvalidInputError, match="not allowed"):
        parse_json_object(raw)


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), 1e400, 2**53, -(2**53), "\ud800", {1: "key not a string"}, b"x"],
)
def test_values_jcs_cannot_represent_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInputError, match="canonical JSON"):
        canonical_bytes({"value": value})


def test_the_largest_safe_integer_is_kept_exactly() -> None:
    assert canonical_bytes({"n": 2**53 - 1}) == b'{"n":9007199254740991}'


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**54), max_value=2**54)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))
    | st.sampled_from(["\x00\x1f\x7f\u2028\ud800", "\ufb33\U0001f600", 'q"\\\b\f\n\r\t/'])
)
_NAMES = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=4) | (
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=6)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_NAMES, inner, max_size=4),
    max_leaves=20,
)


def _rfc8785(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return None


@settings(max_examples=3000, deadline=None)
@given(_VALUES)
def test_the_bytes_of_any_document_are_those_of_the_rfc_8785_implementation(value: Any) -> None:
    """Plain documents are written by the standard library's encoder: byte for byte what
    `rfc8785` writes, and refused where it refuses."""
    document = {"value": value}
    expected = _rfc8785(document)
    if expected is None:
        with pytest.raises(InvalidInputError, match="canonical JSON"):
            canonical_bytes(document)
    else:
        assert canonical_bytes(document) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"ключ": 1, "a": 2},
        {"\ufb33": 1, "\U0001f600": 2},
        [True, 1, False, 0],
        {"deep": [[[[{"x": "\x01"}]]]]},
        (1, 2),
        1.0,
    ],
)
def test_documents_outside_the_plain_ones_have_the_rfc_8785_bytes_too(value: Any) -> None:
    assert canonical_bytes({"value": value}) == rfc8785.dumps({"value": value})
