"""Transcript text → a list of lower-case words: numbers spelled out, punctuation removed, apostrophes kept."""

from __future__ import annotations

import re
import unicodedata

_DIGITS = "zero one two three four five six seven eight nine".split()
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|[^\W\d_]+(?:'[^\W\d_]+)*'?", re.UNICODE)


def _words(spelled: str) -> list[str]:
    """num2words' English ("one hundred and twenty-three") as the words people read it: "and" dropped, hyphens
    and commas split."""
    return [w for w in re.split(r"[\s,-]+", spelled) if w and w != "and"]


def number_words(n: int, to: str = "cardinal") -> list[str]:
    """English words for a non-negative integer (``to``: ``cardinal``, ``ordinal`` or ``year``), spelled by
    num2words."""
    from num2words import num2words

    return _words(num2words(n, lang="en", to=to))


def _spell_number(token: str) -> list[str]:
    suffix = token[-2:] if token[-2:] in ("st", "nd", "rd", "th") else ""
    digits = token[: len(token) - len(suffix)].replace(",", "")
    if "." in digits:  # 3.14 -> three point one four; 1.2.3 (a version) -> one point two point three
        whole, *parts = digits.split(".")
        words = _spell_number(whole) if whole else ["zero"]
        for part in parts:
            words += ["point", *(_DIGITS[int(d)] for d in part)]
        return words
    if len(digits) > 12:  # an identifier, not a quantity: read digit by digit
        return [_DIGITS[int(d)] for d in digits]
    n = int(digits)
    is_year = not suffix and "," not in token and len(digits) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099)
    return number_words(n, "year" if is_year else "ordinal" if suffix else "cardinal")


def normalize_words(text: str) -> list[str]:
    """Split a transcript into lower-case words for alignment.

    Accents are folded (``café`` → ``cafe``), digits are spelled out (``42`` → ``forty two``,
    ``3rd`` → ``third``, ``1999`` → ``nineteen ninety nine``), ``&`` and ``%`` become words,
    hyphens split words, and other punctuation is dropped. Apostrophes inside words are kept
    (``don't``). Letters of other scripts are kept: the caller decides what to do with words
    its vocabulary cannot spell.
    """
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = unicodedata.normalize("NFKD", text.replace("’", "'").replace("‘", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    words: list[str] = []
    for token in _TOKEN.findall(text):
        if token[0].isdigit():
            words.extend(_spell_number(token))
        else:
            words.append(token.strip("'"))
    return [w for w in words if w]
