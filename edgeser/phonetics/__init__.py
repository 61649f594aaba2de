"""Words → phones → syllables: text normalisation, a pronunciation lexicon with G2P fallback, syllabification."""

from edgeser.phonetics.lexicon import Lexicon, Pronunciation
from edgeser.phonetics.normalize import normalize_words
from edgeser.phonetics.syllabify import is_vowel, manner, syllabify

__all__ = ["Lexicon", "Pronunciation", "is_vowel", "manner", "normalize_words", "syllabify"]
