"""Transcript text → a list of lower-case words: numbers spelled out, punctuation removed, apostrophes kept."""

from __future__ import annotations

import re
import unicodedata

from edgeser.errors import InputError

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|[^\W\d_]+(?:'[^\W\d_]+)*'?", re.UNICODE)


def number_words(n: int) -> list[str]:
    """Cardinal English words for a non-negative integer below 10**12."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (number_words(n % 100) if n % 100 else [])
    for scale, name in _SCALES:
        if n >= scale:
            return number_words(n // scale) + [name] + (number_words(n % scale) if n % scale else [])
    raise InputError(f"number too large to spell: {n}")


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return [*words[:-1], last]


def _spell_number(token: str) -> list[str]:
    suffix = token[-2:] if token[-2:] in ("st", "nd", "rd", "th") else ""
    digits = token[: len(token) - len(suffix)].replace(",", "")
    if "." in digits:  # 3.14 -> three point one four; 1.2.3 (a version) -> one point two point three
        whole, *parts = digits.split(".")
        words = _spell_number(whole) if whole else ["zero"]
        for part in parts:
            words += ["point", *(_ONES[int(d)] for d in part)]
        return words
    if len(digits) > 12:
        return [_ONES[int(d)] for d in digits]
    n = int(digits)
    is_year = not suffix and "," not in token and len(digits) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099)
    if is_year:  # read in pairs
        hi, lo = divmod(n, 100)
        return number_words(hi) + (["hundred"] if lo == 0 else ["oh", _ONES[lo]] if lo < 10 else number_words(lo))
    words = number_words(n)
    return _ordinal(words) if suffix else words


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
