"""Words → phones → syllables: text normalisation, a pronunciation lexicon with G2P fallback, syllabification."""

from edgeser.alignment.phonetics.lexicon import Lexicon, Pronunciation
from edgeser.alignment.phonetics.normalize import normalize_words
from edgeser.alignment.phonetics.syllabify import is_vowel, manner, syllabify

__all__ = ["Lexicon", "Pronunciation", "is_vowel", "manner", "normalize_words", "syllabify"]
