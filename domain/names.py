"""Names a signed document gives beside an IIN, compared with the person directory's.

The same name may be written in another case, with other spacing, or in another Unicode
normal form (Й as one character or as И and a combining breve); a name that still differs
is refused, and the refusal says where, since a Latin I for the Kazakh U+0406, or a Latin
schwa for the Cyrillic one, looks the same on a screen.
"""

from __future__ import annotations

import unicodedata


def comparable(name: str) -> str:
    """A name as compared: case, spacing and normal form aside (a canonical caseless match,
    Unicode 15 section 3.13)."""
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())
    return " ".join(folded.split())


def same_name(given: str, known: str) -> bool:
    return comparable(given) == comparable(known)


def difference(given: str, known: str) -> str:
    """Where `given` first differs from `known`, for a person to see: the word, the letter
    and each letter's code point and Unicode name."""
    given_words = unicodedata.normalize("NFC", given).split()
    known_words = unicodedata.normalize("NFC", known).split()
    for number, (mine, theirs) in enumerate(zip(given_words, known_words, strict=False), 1):
        if comparable(mine) == comparable(theirs):
            continue
        for place, (a, b) in enumerate(zip(mine, theirs, strict=False), 1):
            if a.casefold() != b.casefold():
                return (
                    f"word {number}, letter {place}: {_letter(a)} where the directory has "
                    f"{_letter(b)}"
                )
        return f"word {number} is {mine!r} where the directory has {theirs!r}"
    return f"{len(given_words)} word(s) where the directory has {len(known_words)}"


def _letter(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')})"
