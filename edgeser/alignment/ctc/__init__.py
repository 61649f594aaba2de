"""CTC: forced alignment (Viterbi), token/word spans, and beam-search decoding."""

from edgeser.alignment.ctc.align import align_states, forced_align
from edgeser.alignment.ctc.spans import TokenSpan, merge_tokens

__all__ = ["TokenSpan", "align_states", "forced_align", "merge_tokens"]
