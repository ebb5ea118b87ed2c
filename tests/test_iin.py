"""The IIN/BIN check digit, against numbers worked out by hand."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInputError
from domain.iin import Iin, is_valid_iin_bin


def test_a_check_digit_from_the_first_pass_is_accepted() -> None:
    # 8 5 0 3 1 2 4 0 0 1 2 | 8, weights 1..11:
    # 8 + 10 + 0 + 12 + 5 + 12 + 28 + 0 + 0 + 10 + 22 = 107; 107 mod 11 = 8.
    assert is_valid_iin_bin("850312400128")


def test_a_check_digit_from_the_second_pass_is_accepted() -> None:
    # 8 5 0 3 1 2 4 0 1 8 2 | 1, weights 1..11:
    # 8 + 10 + 0 + 12 + 5 + 12 + 28 + 0 + 9 + 80 + 22 = 186; 186 mod 11 = 10, so again
    # with weights 3,4,5,6,7,8,9,10,11,1,2:
    # 24 + 20 + 0 + 18 + 7 + 16 + 36 + 0 + 11 + 8 + 4 = 144; 144 mod 11 = 1.
    assert is_valid_iin_bin("850312401821")


def test_eleven_digits_with_ten_on_both_passes_have_no_valid_number() -> None:
    # 8 5 0 3 1 2 4 0 1 8 1, weights 1..11: 186 - 11 = 175; 175 mod 11 = 10.
    # Weights 3..11,1,2: 144 - 2 = 142; 142 mod 11 = 10. No twelfth digit can help.
    assert not any(is_valid_iin_bin(f"85031240181{digit}") for digit in range(10))


@pytest.mark.parametrize(
    "number",
    [
        "850312400127",
        "850312401822",
        "85031240012",
        "8503124001288",
        "85031240012a",
        "８50312400128",
    ],
)
def test_a_wrong_check_digit_or_shape_is_refused(number: str) -> None:
    assert not is_valid_iin_bin(number)


def test_iin_parse_keeps_a_valid_number() -> None:
    assert str(Iin.parse("850312400128")) == "850312400128"


def test_iin_parse_refuses_a_bad_number_as_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="850312400127"):
        Iin.parse("850312400127")
