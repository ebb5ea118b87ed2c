"""IIN and BIN: Kazakhstan's 12-digit identifiers of individuals and organisations.

Both share one check digit, so one function validates either; a number that fails it is a
typo or a forgery and is refused before anything is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.errors import InvalidInputError

_TWELVE_DIGITS = re.compile(r"[0-9]{12}")
_FIRST_WEIGHTS = tuple(range(1, 12))
_SECOND_WEIGHTS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)


def _weighted_mod_11(digits: list[int], weights: tuple[int, ...]) -> int:
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 11


def is_valid_iin_bin(s: str) -> bool:
    """True if `s` is 12 ASCII digits whose last digit is the check digit of the first 11.

    The check digit is the weighted sum (weights 1..11) mod 11; a result of 10 is retried
    with weights 3..11,1,2, and 10 again means no valid number has these first 11 digits.
    """
    if not _TWELVE_DIGITS.fullmatch(s):
        return False
    digits = [int(c) for c in s]
    check = _weighted_mod_11(digits[:11], _FIRST_WEIGHTS)
    if check == 10:
        check = _weighted_mod_11(digits[:11], _SECOND_WEIGHTS)
        if check == 10:
            return False
    return check == digits[11]


@dataclass(frozen=True)
class Iin:
    """A 12-digit identifier with a valid check digit (an IIN, or a BIN: same format)."""

    value: str

    @classmethod
    def parse(cls, s: str) -> Iin:
        if not isinstance(s, str) or not is_valid_iin_bin(s):
            raise InvalidInputError(f"not a valid IIN/BIN (12 digits with check digit): {s!r}")
        return cls(s)

    def __str__(self) -> str:
        return self.value
