"""Segmentation: where each word, syllable and phone lies in time, from one utterance's CTC emissions.

With a transcript the words are force-aligned; without one they are first decoded (beam search),
then aligned the same way. Phone times come from the alignment itself when the CTC vocabulary is
phonemic; with a character vocabulary each word's span is divided evenly among its phones (from the
lexicon), an approximation that ``Segmentation.phone_timing`` states.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeser.alignment.ctc.align import align_states
from edgeser.alignment.ctc.emissions import Emissions
from edgeser.alignment.ctc.spans import merge_tokens
from edgeser.alignment.phonetics.lexicon import Lexicon, equivalents
from edgeser.alignment.phonetics.normalize import normalize_words
from edgeser.alignment.phonetics.syllabify import manner, syllabify
from edgeser.errors import AlignmentError, InputError
from edgeser.options import SegmentOptions

log = logging.getLogger(__name__)

LEVELS = ("word", "syllable", "phone")
PHONES_ALIGNED = "aligned"
PHONES_UNIFORM = "uniform within word (approximation: character CTC has no phone times)"


@dataclass(frozen=True)
class Segment:
    """A labelled time span. ``score`` is the geometric-mean posterior of its aligned frames (0..1)."""

    level: str
    label: str
    start_s: float
    end_s: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4),
                "score": round(self.score, 4)}


@dataclass(frozen=True)
class Segmentation:
    """Words, syllables and phones of one utterance, with how they were found.

    Attributes:
        confidence: ``exp`` of the mean per-frame log-probability gap between the forced path and the
            best unconstrained path, over the frames where either emits a token: 1.0 when the transcript
            is exactly what the model hears best, lower for a transcript that does not match.
        mode: ``"forced"`` (transcript given) or ``"decoded"`` (beam search, then aligned).
        skipped: Characters or phones left out under ``on_unknown="skip"``.
    """

    words: tuple[Segment, ...]
    syllables: tuple[Segment, ...]
    phones: tuple[Segment, ...]
    transcript: str
    mode: str
    confidence: float
    phone_timing: str
    aligner: str
    duration_s: float
    skipped: tuple[str, ...] = ()

    def level(self, name: str) -> tuple[Segment, ...]:
        if name not in LEVELS:
            raise InputError(f"level must be one of {LEVELS}, got {name!r}")
        return {"word": self.words, "syllable": self.syllables, "phone": self.phones}[name]

    def by_word(self, name: str) -> list[tuple[Segment, ...]]:
        """The syllables or phones of each word, in word order. A segment belongs to the first word whose
        span holds its midpoint (ends included), so a phone squeezed to zero length where one word meets
        the next stays with its own word."""
        groups: list[list[Segment]] = [[] for _ in self.words]
        for seg in self.level(name):
            mid = (seg.start_s + seg.end_s) / 2
            w = next((i for i, word in enumerate(self.words) if word.start_s <= mid <= word.end_s), None)
            if w is not None:
                groups[w].append(seg)
        return [tuple(g) for g in groups]

    def to_dict(self) -> dict[str, Any]:
        return {"transcript": self.transcript, "mode": self.mode, "confidence": round(self.confidence, 4),
                "phone_timing": self.phone_timing, "aligner": self.aligner, "duration_s": round(self.duration_s, 4),
                "skipped": list(self.skipped), "words": [s.to_dict() for s in self.words],
                "syllables": [s.to_dict() for s in self.syllables], "phones": [s.to_dict() for s in self.phones]}


@dataclass(frozen=True)
class WordPlan:
    """One word to align: its label, the CTC units that spell it, and its phones (IPA)."""

    label: str
    unit_ids: tuple[tuple[int, ...], ...]  # per unit, the vocabulary ids that may emit it
    unit_labels: tuple[str, ...]
    phones: tuple[str, ...]


def plan_words(words: Sequence[str], emissions: Emissions, lexicon: Lexicon, on_unknown: str
               ) -> tuple[list[list[WordPlan]], list[str]]:
    """Spell each normalised word in the emission vocabulary (phones or characters).

    Returns, per word, its candidate plans (the lexicon's pronunciations for a phonemic vocabulary,
    main one first; one plan for characters), and what could not be expressed.
    """
    vocab = emissions.vocab
    index = {t: i for i, t in enumerate(vocab.tokens)}
    specials = {vocab.tokens[vocab.blank_id], vocab.word_delimiter, vocab.unk_token}
    letters = [t for t in vocab.tokens if len(t) == 1 and t.isalpha() and t not in specials]
    upper = bool(letters) and all(t.isupper() for t in letters)
    plans: list[list[WordPlan]] = []
    unknown: list[str] = []
    for word in words:
        pron = lexicon.pronounce(word)
        if vocab.kind == "phonemes":
            if not pron.phones:
                unknown.append(f"{word!r} (no pronunciation)")
            spellings = [[(p, tuple(index[q] for q in equivalents(p) if q in index)) for p in phones]
                         for phones in pron.all]
        else:
            spellings = [[(c, (index[u],) if (u := c.upper() if upper else c) in index else ()) for c in word]]
        missing = [label for label, ids in spellings[0] if not ids]
        if missing:
            unknown.append(f"{word!r}: {' '.join(missing)}")
        candidates = []
        for units in spellings:
            kept = [(label, ids) for label, ids in units if ids]
            if kept and (len(kept) == len(units) or units is spellings[0]):
                labels = tuple(label for label, _ in kept)
                candidates.append(WordPlan(word, tuple(ids for _, ids in kept), labels,
                                           labels if vocab.kind == "phonemes" else pron.phones))
        if candidates:
            plans.append(candidates)
    if unknown and on_unknown == "error":
        raise AlignmentError(f"the {vocab.kind} vocabulary of this aligner cannot express: {'; '.join(unknown)}. "
                             "Fix the transcript, or pass on_unknown='skip' (--skip-unknown) to leave them out")
    for item in unknown:
        log.warning("left out of the alignment: %s", item)
    return plans, unknown


@dataclass(frozen=True, eq=False)
class ForcedPath:
    """The Viterbi path of planned words through one utterance's emissions (:func:`forced_path`). It does
    not depend on the boundary rule, so one path serves every :class:`SegmentOptions` tried on it."""

    states: np.ndarray  # target index per frame, -1 on blanks
    frame_scores: np.ndarray  # log-prob of the aligned label per frame
    labels: np.ndarray  # aligned column per frame (extended columns for equivalent phones)
    owner: list[tuple[int, int]]  # per target: (word, unit), unit -1 for a delimiter

    def unit_spans(self) -> dict[tuple[int, int], tuple[int, int, float]]:
        spans = {}
        for span in merge_tokens(self.states, self.frame_scores):
            w, u = self.owner[span.index]
            if u >= 0:
                spans[(w, u)] = (span.start, span.end, span.score)
        return spans


def _viterbi(log_probs: np.ndarray, vocab: Any, plans: Sequence[WordPlan]) -> ForcedPath:
    """Force-align the planned words (delimiters between them) to ``log_probs``."""
    delimiter = vocab.tokens.index(vocab.word_delimiter) if vocab.word_delimiter is not None else None
    # Units that several ids may emit (equivalent phones) become one extra column: the best member per frame.
    columns: dict[tuple[int, ...], int] = {}
    extra: list[np.ndarray] = []
    targets: list[int] = []
    owner: list[tuple[int, int]] = []
    for w, plan in enumerate(plans):
        if w and delimiter is not None:
            targets.append(delimiter)
            owner.append((w, -1))
        for u, ids in enumerate(plan.unit_ids):
            if len(ids) == 1:
                targets.append(ids[0])
            else:
                if ids not in columns:
                    columns[ids] = log_probs.shape[1] + len(extra)
                    extra.append(log_probs[:, list(ids)].max(axis=1))
                targets.append(columns[ids])
            owner.append((w, u))
    ext = np.concatenate([log_probs, np.stack(extra, axis=1)], axis=1) if extra else log_probs
    states = align_states(ext, np.array(targets), vocab.blank_id)
    labels = np.where(states >= 0, np.array(targets)[np.maximum(states, 0)], vocab.blank_id)
    return ForcedPath(states, ext[np.arange(labels.size), labels], labels, owner)


def choose_pronunciations(emissions: Emissions, candidates: Sequence[Sequence[WordPlan]]) -> list[WordPlan]:
    """Pick, for each word with several pronunciations, the one the model hears best.

    The words are first aligned with their main pronunciations; then each candidate of a word is
    force-aligned alone over the same window (from the previous word's end to the next word's start)
    and the best total log-probability wins. Candidates too long for the window are skipped.
    """
    plans = [c[0] for c in candidates]
    if all(len(c) == 1 for c in candidates):
        return plans
    spans = _viterbi(emissions.log_probs, emissions.vocab, plans).unit_spans()
    frames = emissions.num_frames
    chosen = list(plans)
    for w, cands in enumerate(candidates):
        if len(cands) == 1:
            continue
        lo = spans[(w - 1, len(plans[w - 1].unit_ids) - 1)][1] if w else 0
        hi = spans[(w + 1, 0)][0] if w + 1 < len(plans) else frames
        window = emissions.log_probs[lo:hi]
        best = -np.inf
        for cand in cands:
            try:
                score = float(_viterbi(window, emissions.vocab, [cand]).frame_scores.sum())
            except AlignmentError:
                continue
            if score > best:
                best, chosen[w] = score, cand
    return chosen


def forced_path(emissions: Emissions, plans: Sequence[WordPlan]) -> ForcedPath:
    """Force-align planned words (word delimiters between them) to the emissions."""
    if not plans:
        raise AlignmentError("nothing to align: the transcript has no words the aligner can spell; pass the "
                             "spoken words (letters or digits)")
    return _viterbi(emissions.log_probs, emissions.vocab, plans)


def align_words(emissions: Emissions, plans: Sequence[WordPlan], options: SegmentOptions, *, mode: str,
                aligner: str, skipped: Sequence[str] = (), path: ForcedPath | None = None) -> Segmentation:
    """Force-align planned words to the emissions and build the three levels.

    ``path`` is :func:`forced_path` of the same emissions and plans, where the caller already has it.
    """
    if path is None:
        path = forced_path(emissions, plans)
    vocab, lp = emissions.vocab, emissions.log_probs
    # Compare with the best unconstrained path on frames where either path emits a token (silence says nothing).
    speech = (path.labels != vocab.blank_id) | (lp.argmax(axis=1) != vocab.blank_id)
    confidence = float(np.exp(np.mean((path.frame_scores - lp.max(axis=1))[speech])))
    unit_spans = path.unit_spans()

    word_frames = [(unit_spans[(w, 0)][0], unit_spans[(w, len(p.unit_ids) - 1)][1]) for w, p in enumerate(plans)]
    duration = emissions.time(emissions.num_frames)
    # Shifted words never overlap: a start moves back at most to (just before) the previous word's aligned
    # end, then an end moves forward at most to the next word's (shifted) start. Starts come first: CTC puts
    # them late, by an amount that depends on the first phone's manner (SegmentOptions).
    first = [manner(p.phones[0]) if p.phones and vocab.kind == "phonemes" else None for p in plans]
    starts = [max(0.0, emissions.time(s) - options.start_shift(first[w]),
                  emissions.time(word_frames[w - 1][1]) - options.overlap_s if w else 0.0)
              for w, (s, _) in enumerate(word_frames)]
    last = len(plans) - 1
    final_shift = options.final_end_shift_s + options.final_end_scale * emissions.hop_s * (
        word_frames[last][1] - word_frames[last][0])
    ends = [min(duration, emissions.time(e) + (final_shift if w == last else options.end_shift_s),
                starts[w + 1] if w < last else duration) for w, (_, e) in enumerate(word_frames)]
    ends[last] = max(ends[last], emissions.time(word_frames[last][0] + 1))  # a negative final shift keeps a frame

    words, syllables, phones = [], [], []
    for w, plan in enumerate(plans):
        log_scores = [unit_spans[(w, u)][2] for u in range(len(plan.unit_ids))]  # mean log-prob per unit
        words.append(Segment("word", plan.label, starts[w], ends[w], float(np.exp(np.mean(log_scores)))))
        if vocab.kind == "phonemes":
            bounds = [starts[w]]
            for u in range(1, len(plan.unit_ids)):  # a phone starts at its spike, moved back by the phone shift
                spike, previous_end = unit_spans[(w, u)][0], unit_spans[(w, u - 1)][1]
                bounds.append(max(emissions.time(spike) - options.phone_shift_s, emissions.time(previous_end),
                                  bounds[-1]))
            bounds = [min(b, ends[w]) for b in bounds] + [ends[w]]  # a large overlap_s can end a word early
            labels_w = [_chosen(plan.unit_ids[u], plan.unit_labels[u], vocab.tokens, lp, unit_spans[(w, u)])
                        for u in range(len(plan.unit_ids))]
            phone_scores = [float(np.exp(s)) for s in log_scores]
        else:
            n = max(len(plan.phones), 1)
            bounds = list(np.linspace(starts[w], ends[w], n + 1))
            labels_w = list(plan.phones) or [plan.label]
            phone_scores = [words[-1].score] * n
        for p, label in enumerate(labels_w):
            phones.append(Segment("phone", label, bounds[p], bounds[p + 1], phone_scores[p]))
        for s, e in syllabify(labels_w):
            syllables.append(Segment("syllable", "".join(labels_w[s:e]), bounds[s], bounds[e],
                                     float(np.exp(np.mean(np.log(np.maximum(phone_scores[s:e], 1e-30)))))))
    return Segmentation(words=tuple(words), syllables=tuple(syllables), phones=tuple(phones),
                        transcript=" ".join(p.label for p in plans), mode=mode, confidence=confidence,
                        phone_timing=PHONES_ALIGNED if vocab.kind == "phonemes" else PHONES_UNIFORM,
                        aligner=aligner, duration_s=duration, skipped=tuple(skipped))


def _chosen(ids: tuple[int, ...], label: str, tokens: tuple[str, ...], lp: np.ndarray,
            span: tuple[int, int, float]) -> str:
    """For a unit several phones could emit, the one the model preferred over its frames."""
    if len(ids) == 1:
        return label
    start, end, _ = span
    return tokens[ids[int(np.argmax(lp[start:end][:, list(ids)].sum(axis=0)))]]




def segment(emissions: Emissions, text: str | None, *, aligner: str, lexicon: Lexicon | None = None,
            options: SegmentOptions | None = None) -> Segmentation:
    """Words, syllables and phones of one utterance.

    Args:
        emissions: CTC log-probabilities of the utterance.
        text: Its transcript (forced alignment), or ``None`` to decode the words first.
        aligner: A description of where the emissions came from, recorded in the result.
        lexicon: Pronunciations (default: CMUdict + hama G2P).
        options: Boundary rule, unknown-character policy, decoder settings.

    Raises:
        AlignmentError: Empty or unspellable transcript, too little audio for the transcript, or no
            words found when decoding. A transcript that does not match is not an error: its low
            ``confidence`` says so.
    """
    options = options or SegmentOptions()
    lexicon = lexicon or Lexicon.default()
    if text is not None:
        words = normalize_words(text)
        if not words:
            raise AlignmentError(f"the transcript {text!r} has no words after normalisation (letters or "
                                 "digits); pass the spoken words, or no transcript to decode them")
        candidates, unknown = plan_words(words, emissions, lexicon, options.on_unknown)
        plans = choose_pronunciations(emissions, candidates) if candidates else []
        return align_words(emissions, plans, options, mode="forced", aligner=aligner, skipped=unknown)
    from edgeser.alignment.ctc.decode import beam_decoder

    vocab = emissions.vocab
    decoded = beam_decoder(vocab, options.beam_width, options.kenlm_path)(emissions.pause_marked())
    decoded = [ids for ids in decoded if ids]
    if not decoded:
        raise AlignmentError("no words were recognised in the audio (is it speech?); pass the transcript to "
                             "force an alignment")
    if vocab.kind == "phonemes":
        plans = []
        for ids in decoded:
            phones = tuple(vocab.tokens[i] for i in ids)
            plans.append(WordPlan("".join(phones), tuple((i,) for i in ids), phones, phones))
        skipped: list[str] = []
    else:
        text = " ".join("".join(vocab.tokens[i] for i in ids) for ids in decoded)
        candidates, skipped = plan_words(normalize_words(text), emissions, lexicon, "skip")
        plans = [c[0] for c in candidates]
    return align_words(emissions, plans, options, mode="decoded", aligner=aligner, skipped=skipped)
