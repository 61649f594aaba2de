"""Text normalisation, the lexicon and the syllabifier."""

from __future__ import annotations

import pytest

from edgeser.alignment.phonetics import Lexicon, normalize_words, syllabify
from edgeser.alignment.phonetics.lexicon import ARPABET_TO_IPA, equivalents


@pytest.mark.parametrize("text,words", [
    ("Kids are talking by the door.", ["kids", "are", "talking", "by", "the", "door"]),
    ("Don't STOP — it's “fine”!", ["don't", "stop", "it's", "fine"]),
    ("I have 42 cats & 3 dogs", ["i", "have", "forty", "two", "cats", "and", "three", "dogs"]),
    ("the 3rd of 21st", ["the", "third", "of", "twenty", "first"]),
    ("in 1999 and 2024", ["in", "nineteen", "ninety", "nine", "and", "twenty", "twenty", "four"]),
    ("1,250 people, 3.5%", ["one", "thousand", "two", "hundred", "fifty", "people", "three", "point", "five",
                             "percent"]),
    ("well-known café", ["well", "known", "cafe"]),
    ("'quoted' rock'n'roll", ["quoted", "rock'n'roll"]),
    ("   ...!?   ", []),
    ("日本語 ok", ["日本語", "ok"]),
    ("version 1.2.3", ["version", "one", "point", "two", "point", "three"]),  # raised a ValueError
    ("10.0.0.1", ["ten", "point", "zero", "point", "zero", "point", "one"]),
    ("12345678901234.5", [*"one two three four five six seven eight nine zero one two three four".split(), "point",
                          "five"]),
])
def test_normalize_words(text: str, words: list[str]) -> None:
    assert normalize_words(text) == words


WORDS = {  # IPA phones, expected syllables
    "extra": ("ɛ k s t ɹ ʌ", ["ɛk", "stɹʌ"]),
    "butter": ("b ʌ t ɝ", ["bʌ", "tɝ"]),
    "window": ("w ɪ n d oʊ", ["wɪn", "doʊ"]),
    "monster": ("m ɑ n s t ɝ", ["mɑn", "stɝ"]),
    "athlete": ("æ θ l i t", ["æθ", "lit"]),
    "emotion": ("ɪ m oʊ ʃ ʌ n", ["ɪ", "moʊ", "ʃʌn"]),
    "strengths": ("s t ɹ ɛ ŋ k θ s", ["stɹɛŋkθs"]),
    "hmm": ("h m", ["hm"]),
    "happy": ("h æ p i", ["hæ", "pi"]),
    "constant": ("k ɑ n s t ʌ n t", ["kɑn", "stʌnt"]),
    "explain": ("ɪ k s p l eɪ n", ["ɪk", "spleɪn"]),
    "area": ("ɛ ɹ i ʌ", ["ɛ", "ɹi", "ʌ"]),
    "quickly": ("k w ɪ k l i", ["kwɪ", "kli"]),  # maximal onset ignores morphology (quick+ly), as documented
}


@pytest.mark.parametrize("word", sorted(WORDS))
def test_syllabify_word_list(word: str) -> None:
    phones, expected = WORDS[word]
    p = phones.split()
    spans = syllabify(p)
    assert ["".join(p[s:e]) for s, e in spans] == expected
    assert spans[0][0] == 0 and spans[-1][1] == len(p)  # covers every phone, in order


def test_syllabify_empty() -> None:
    assert syllabify([]) == []


def test_every_arpabet_phone_maps_and_equivalents() -> None:
    assert len(ARPABET_TO_IPA) == 39
    assert equivalents("ə") == ("ə", "ʌ") and equivalents("k") == ("k",)


def test_lexicon_with_a_given_dictionary_and_fallback() -> None:
    lex = Lexicon({"door": ("d", "ɔ", "ɹ")}, g2p=lambda w: tuple(w))
    assert lex.pronounce("door").source == "cmudict"
    fallback = lex.pronounce("xyz")
    assert fallback.source == "g2p" and fallback.phones == ("x", "y", "z")
    assert lex.pronounce("xyz") is fallback  # cached: G2P runs once per word
    assert lex.pronounce("xyz").phones == ("x", "y", "z") and lex.pronounce("xyz").source == "g2p"
    assert Lexicon({}, g2p=None).pronounce("word").phones == ()


def test_cmudict_and_hama_g2p() -> None:
    pytest.importorskip("pocketsphinx", reason="CMUdict comes from pocketsphinx (edgeser[align])")
    pytest.importorskip("hama", reason="G2P comes from hama (edgeser[align])")
    lex = Lexicon.default()
    assert "talking" in lex
    assert lex.pronounce("talking").phones == ("t", "ɔ", "k", "ɪ", "ŋ")
    assert lex.pronounce("kids").phones == ("k", "ɪ", "d", "z")
    oov = lex.pronounce("edgeser")
    assert oov.source == "g2p" and oov.phones[:2] == ("ɛ", "d͡ʒ")


def test_manner_classes() -> None:
    from edgeser.alignment.phonetics import manner
    from edgeser.options import SegmentOptions

    assert [manner(p) for p in ("aɪ", "k", "d͡ʒ", "ʃ", "ð", "ŋ", "ɹ", "iː", "@")] == [
        "vowel", "stop", "stop", "sibilant", "fricative", "nasal", "approximant", "vowel", None]
    opts = SegmentOptions()
    assert opts.start_shift("sibilant") > opts.start_shift("fricative")
    assert opts.start_shift("nasal") == opts.start_shift_s
    assert opts.start_shift(None) == opts.start_shift_s
    with pytest.raises(ValueError, match="shift"):
        SegmentOptions(start_shift_by_class=(("vowel", -0.1),))
    with pytest.raises(ValueError, match="final_end_scale"):
        SegmentOptions(final_end_scale=-0.5)
