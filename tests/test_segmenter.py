"""Segmentation on emissions with a known answer, bad input, pooling, TextGrid, and the align command."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeser.alignment.ctc.emissions import Emissions
from edgeser.alignment.phonetics import Lexicon
from edgeser.alignment.pooling import assignment, frame_centres_s, pool, pool_batch
from edgeser.alignment.segmenter import PHONES_ALIGNED, PHONES_UNIFORM, Segment, segment
from edgeser.alignment.textgrid import to_textgrid
from edgeser.audio import check_not_silent
from edgeser.cli import main
from edgeser.errors import AlignmentError
from edgeser.model.bundle import CtcVocab
from edgeser.model.specs import FrameFormula
from edgeser.options import SegmentOptions
from tests.conftest import SAMPLE, ravdess_files

CHARS = CtcVocab(tokens=("<pad>", "|", "A", "B", "C", "'"), blank_id=0, word_delimiter="|", unk_token=None,
                 kind="characters")
PHONES = CtcVocab(tokens=("<b>", "<wb>", "æ", "b", "s", "i", "ʌ", "ə"), blank_id=0, word_delimiter="<wb>",
                  unk_token=None, kind="phonemes")
LEXICON = Lexicon({"ab": ("æ", "b"), "c": ("s", "i"), "cab": ("s", "æ", "b"), "a": ("ʌ",)}, g2p=None)
EXACT = SegmentOptions.exact()  # boundaries at the aligned frames


def peaks(vocab: CtcVocab, frames: int, spikes: dict[int, str], floor: float = 0.02) -> Emissions:
    """Emissions that are blank everywhere except the given token at the given frames."""
    p = np.full((frames, len(vocab.tokens)), floor)
    p[:, vocab.blank_id] = 1.0
    for t, token in spikes.items():
        p[t] = floor
        p[t, vocab.tokens.index(token)] = 1.0
    p /= p.sum(1, keepdims=True)
    return Emissions(np.log(p).astype(np.float32), vocab, hop_s=0.02)


def test_character_alignment_recovers_the_spikes() -> None:
    em = peaks(CHARS, 30, {5: "A", 8: "B", 12: "|", 20: "C"})
    seg = segment(em, "Ab, c!", aligner="test", lexicon=LEXICON, options=EXACT)
    assert [(w.label, w.start_s, w.end_s) for w in seg.words] == [("ab", 0.10, 0.18), ("c", 0.40, 0.42)]
    assert seg.mode == "forced" and seg.phone_timing == PHONES_UNIFORM and seg.confidence > 0.95
    assert [p.label for p in seg.phones] == ["æ", "b", "s", "i"]
    assert [(p.start_s, p.end_s) for p in seg.phones[:2]] == [(0.10, 0.14), (0.14, 0.18)]  # even split
    assert [s.label for s in seg.syllables] == ["æb", "si"]


def test_phoneme_alignment_places_each_phone_and_picks_equivalents() -> None:
    em = peaks(PHONES, 40, {3: "s", 6: "æ", 9: "b", 14: "<wb>", 18: "ə"})
    seg = segment(em, "cab a", aligner="test", lexicon=LEXICON, options=EXACT)
    assert seg.phone_timing == PHONES_ALIGNED
    assert [(p.label, p.start_s) for p in seg.phones] == [("s", 0.06), ("æ", 0.12), ("b", 0.18), ("ə", 0.36)]
    assert seg.phones[2].end_s == seg.words[0].end_s == 0.20
    assert seg.words[1].label == "a" and seg.phones[3].label == "ə"  # lexicon says ʌ; the model heard ə


@pytest.mark.parametrize("vocab,spikes,text", [
    (CHARS, {5: "A", 8: "B", 12: "|", 20: "C"}, "ab c"),
    (PHONES, {3: "s", 6: "æ", 9: "b", 14: "<wb>", 18: "ə"}, "cab a"),
])
def test_scores_are_probabilities_at_every_level(vocab: CtcVocab, spikes: dict[int, str], text: str) -> None:
    seg = segment(peaks(vocab, 40, spikes), text, aligner="t", lexicon=LEXICON)
    for level in ("word", "syllable", "phone"):
        assert all(0.0 < s.score <= 1.0 for s in seg.level(level)), level
    syllable = seg.syllables[0]
    inside = [p.score for p in seg.phones if syllable.start_s <= p.start_s < syllable.end_s]
    assert syllable.score == pytest.approx(float(np.exp(np.mean(np.log(inside)))))


def test_boundary_shift_never_overlaps_neighbours() -> None:
    em = peaks(CHARS, 30, {5: "A", 6: "B", 7: "|", 8: "C"})
    seg = segment(em, "ab c", aligner="t", lexicon=LEXICON, options=SegmentOptions(
        start_shift_s=0.08, end_shift_s=0.08, final_end_shift_s=0.08, overlap_s=0.0))
    w0, w1 = seg.words
    assert w0.start_s == pytest.approx(0.02) and w0.end_s <= w1.start_s and w1.start_s == pytest.approx(0.14)
    # a start may reach overlap_s before the previous word's last aligned frame, and no further
    seg = segment(em, "ab c", aligner="t", lexicon=LEXICON, options=SegmentOptions(
        start_shift_s=0.3, overlap_s=0.01))
    assert seg.words[1].start_s == pytest.approx(0.14 - 0.01) == seg.words[0].end_s


def test_a_wrong_transcript_is_reported_by_confidence_not_hidden() -> None:
    em = peaks(CHARS, 30, {5: "A", 8: "B", 12: "|", 20: "C"})
    right = segment(em, "ab c", aligner="t", lexicon=LEXICON)
    wrong = segment(em, "c ab", aligner="t", lexicon=LEXICON)
    assert right.confidence > 0.95 > 0.5 > wrong.confidence


@pytest.mark.parametrize("text,message", [
    ("", "no words after normalisation"),
    ("?! ...", "no words after normalisation"),
    ("ab xyz", r"cannot express: 'xyz': x y z"),
    ("日本", "cannot express"),
    ("ab " * 20, r"needs at least \d+ frames .* the audio gives 30"),
])
def test_bad_transcripts(text: str, message: str) -> None:
    em = peaks(CHARS, 30, {5: "A", 8: "B"})
    with pytest.raises(AlignmentError, match=message):
        segment(em, text, aligner="t", lexicon=LEXICON)


def test_skip_unknown_leaves_out_and_records() -> None:
    em = peaks(CHARS, 30, {5: "A", 8: "B", 12: "|", 20: "C"})
    seg = segment(em, "ab, xc", aligner="t", lexicon=LEXICON, options=SegmentOptions(on_unknown="skip"))
    assert [w.label for w in seg.words] == ["ab", "xc"] and seg.skipped == ("'xc': x",)


def test_silence_is_refused_but_soft_speech_with_pauses_is_not() -> None:
    with pytest.raises(AlignmentError, match="silent"):
        check_not_silent(np.random.default_rng(0).normal(0, 3e-4, 48000).astype(np.float32))  # about -70 dBFS
    soft = np.zeros(64000, np.float32)  # 4 s, of which 0.3 s at about -45 dBFS: whole-file RMS about -57 dBFS
    soft[20000:24800] = 0.0079 * np.sin(np.arange(4800) / 5.0)
    check_not_silent(soft)


FRAMES = FrameFormula((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), 16000)


def seg(start: float, end: float) -> Segment:
    return Segment("word", "w", start, end, 1.0)


@settings(max_examples=40, deadline=None)
@given(bounds=st.lists(st.tuples(st.floats(0, 1.0), st.floats(0, 0.3)), min_size=1, max_size=6))
def test_pooling_is_the_mean_over_frames_whose_centre_is_inside(bounds: list[tuple[float, float]]) -> None:
    hidden = np.random.default_rng(0).standard_normal((2, 50, 4)).astype(np.float32)
    segments = [seg(a, a + d) for a, d in bounds]
    pooled = pool(hidden, segments, FRAMES)
    centres = frame_centres_s(FRAMES, 50)
    for i, s in enumerate(segments):
        inside = [t for t in range(50) if s.start_s <= centres[t] < s.end_s]
        if not inside:  # shorter than a frame: the nearest frame, never an empty mean
            inside = [int(np.argmin(np.abs(centres - (s.start_s + s.end_s) / 2)))]
        np.testing.assert_allclose(pooled[:, i], hidden[:, inside].mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(assignment(segments, centres).sum(1), 1.0, rtol=1e-6)


def test_pool_batch_pads_and_masks() -> None:
    hidden = np.random.default_rng(1).standard_normal((2, 1, 60, 3)).astype(np.float32)
    pooled, mask = pool_batch(hidden, np.array([60, 30]), [[seg(0, 0.3), seg(0.3, 0.5)], [seg(0.1, 0.2)]], FRAMES)
    assert pooled.shape == (2, 1, 2, 3) and mask.tolist() == [[True, True], [True, False]]
    assert not pooled[1, :, 1].any()
    np.testing.assert_allclose(pooled[1, 0, 0], pool(hidden[1, 0, :30], [seg(0.1, 0.2)], FRAMES)[0])


def test_textgrid_tiles_the_whole_duration() -> None:
    em = peaks(CHARS, 30, {5: "A", 8: "B", 12: "|", 20: "C"})
    grid = to_textgrid(segment(em, 'ab "c"', aligner="t", lexicon=LEXICON, options=EXACT))
    assert grid.startswith('File type = "ooTextFile"') and "size = 3" in grid
    words_tier = grid.split('name = "words"')[1].split("item [2]")[0]
    xs = [float(x) for x in re.findall(r"xm(?:in|ax) = ([\d.]+)", words_tier)][2:]  # skip the tier's own
    assert xs[0] == 0 and xs[-1] == pytest.approx(0.6)
    assert all(a == b for a, b in zip(xs[1:-1:2], xs[2::2], strict=True))  # each interval starts where one ends
    assert re.findall(r'text = "(.*)"', words_tier) == ["", "ab", "", "c", ""]


def test_default_aligner_on_real_speech() -> None:
    pytest.importorskip("hama", reason="the default aligner is hama's phoneme recognizer (edgeser[align])")
    pytest.importorskip("pocketsphinx", reason="CMUdict comes from pocketsphinx (edgeser[align])")
    from edgeser.alignment.aligner import align

    files = ravdess_files(2)
    seg = align(files[0], "Kids are talking by the door.")
    assert [w.label for w in seg.words] == ["kids", "are", "talking", "by", "the", "door"]
    starts = [w.start_s for w in seg.words]
    assert starts == sorted(starts) and 0.5 < starts[0] < 1.5 and seg.words[-1].end_s < seg.duration_s
    assert [s.label for s in seg.syllables][2:4] == ["tɔ", "kɪŋ"]
    wrong = align(files[0], "The weather will be cold tomorrow morning.")
    assert seg.confidence > 0.8 > 0.5 > wrong.confidence


def test_align_command_json_and_textgrid(tmp_path: Path) -> None:
    pytest.importorskip("hama", reason="the default aligner is hama's phoneme recognizer (edgeser[align])")
    pytest.importorskip("pocketsphinx", reason="CMUdict comes from pocketsphinx (edgeser[align])")
    grid = tmp_path / "out.TextGrid"
    result = CliRunner().invoke(main, ["align", str(SAMPLE), "--text", "Kids are talking by the door.", "--json",
                                       "--textgrid", str(grid)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"words", "syllables", "phones"} <= set(data)
    assert set(data["words"][0]) == {"label", "start_s", "end_s", "score"}
    assert [w["label"] for w in data["words"]] == ["kids", "are", "talking", "by", "the", "door"]
    assert grid.read_text().count("IntervalTier") == 3
    result = CliRunner().invoke(main, ["align", str(SAMPLE), "--text", "one two three four five " * 12])
    assert result.exit_code == 1 and "needs at least" in result.output and "Traceback" not in result.output


def test_decoding_without_transcript() -> None:
    pytest.importorskip("ctc_beam_decoder", reason="decoding needs ctc-beam-decoder (edgeser[align])")
    em = peaks(CHARS, 30, {5: "A", 8: "B", 12: "|", 20: "C"})
    seg = segment(em, None, aligner="t", lexicon=LEXICON)
    assert seg.mode == "decoded" and [w.label for w in seg.words] == ["ab", "c"]
    em = peaks(PHONES, 40, {3: "s", 6: "æ", 9: "b", 14: "<wb>", 18: "ə"})
    seg = segment(em, None, aligner="t", lexicon=LEXICON)
    assert [w.label for w in seg.words] == ["sæb", "ə"] and [p.label for p in seg.phones] == ["s", "æ", "b", "ə"]
    with pytest.raises(AlignmentError, match="no words were recognised"):
        segment(peaks(CHARS, 30, {}), None, aligner="t", lexicon=LEXICON)


def test_bundle_segment_uses_one_encoder_pass(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeser import EmotionRecognizer

    rec = EmotionRecognizer.from_bundle(tiny_bundle)
    calls = []
    speech_graph = rec._speech
    assert speech_graph is not None
    original = speech_graph.run
    monkeypatch.setattr(speech_graph, "run", lambda feeds: calls.append(1) or original(feeds))  # the graph itself
    seg = rec.segment(SAMPLE, "kids are talking", lexicon=Lexicon({}, g2p=None))
    assert len(calls) == 1 and [w.label for w in seg.words] == ["kids", "are", "talking"]
    assert seg.phone_timing == PHONES_UNIFORM and 0 <= seg.words[0].start_s < seg.words[-1].end_s <= seg.duration_s


@pytest.mark.integration
def test_default_aligner_covers_audio_beyond_hamas_30_s_limit() -> None:
    """hama's recognizer stops silently at 30 s; the aligner feeds it chunks, so 40+ s are covered to the end."""
    pytest.importorskip("hama", reason="the default aligner is hama's phoneme recognizer (edgeser[align])")
    pytest.importorskip("pocketsphinx", reason="CMUdict comes from pocketsphinx (edgeser[align])")
    from edgeser.alignment.aligner import align, default_aligner
    from edgeser.audio import load_audio

    sentences = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
    waves, texts = [], []
    for f in ravdess_files(20):  # whole files until past 40 s
        waves.append(load_audio(f))
        texts.append(sentences[f.name.split("-")[4]])
        if sum(w.size for w in waves) > 40 * 16000:
            break
    wave = np.concatenate(waves)
    em = default_aligner().emissions(wave)
    assert abs(em.num_frames - wave.size / 320) <= 3  # three 20 s chunks, at most a frame of rounding each
    seg = align(wave, " ".join(texts), sample_rate=16000)
    assert len(seg.words) == 6 * len(waves) and seg.words[-1].label == "door"
    assert seg.words[-1].end_s > seg.duration_s - 2.0  # the last word is near the end, not lost after 30 s
    assert seg.confidence > 0.5


def test_decoder_labels_are_exact_and_explicit() -> None:
    from edgeser.alignment.ctc.decode import _labels

    labels = _labels(CHARS.tokens, CHARS.blank_id, CHARS.word_delimiter)
    assert labels[0] == "" and labels[1] == " " and len(set(labels[2:])) == 4 and not any(x.isalpha() for x in labels)
    assert _labels(CHARS.tokens, 0, "|", spelled=True)[2:] == ["a", "b", "c", "'"]
    with pytest.raises(ValueError, match="share a lower-case spelling"):
        _labels(("<pad>", "A", "a"), 0, None, spelled=True)


def test_final_word_end_grows_with_its_aligned_length() -> None:
    em = peaks(CHARS, 40, {5: "A", 8: "B", 12: "|", 18: "C", 19: "C", 20: "C", 21: "C"})
    exact = segment(em, "ab c", aligner="t", lexicon=LEXICON, options=SegmentOptions.exact()).words[1]
    assert exact.end_s - exact.start_s > 0.05  # a long final word, so the scaled term is visible
    shifted = replace(SegmentOptions.exact(), final_end_shift_s=0.05, final_end_scale=0.5)
    seg = segment(em, "ab c", aligner="t", lexicon=LEXICON, options=shifted)
    assert seg.words[1].end_s == pytest.approx(exact.end_s + 0.05 + 0.5 * (exact.end_s - exact.start_s))
    assert seg.words[0].end_s == pytest.approx(segment(em, "ab c", aligner="t", lexicon=LEXICON,
                                                       options=SegmentOptions.exact()).words[0].end_s)


def test_negative_final_shift_moves_the_last_end_earlier_but_keeps_one_frame() -> None:
    em = peaks(CHARS, 40, {5: "A", 8: "B", 12: "|", 18: "C", 19: "C", 20: "C", 21: "C"})
    exact = segment(em, "ab c", aligner="t", lexicon=LEXICON, options=EXACT).words[1]
    earlier = segment(em, "ab c", aligner="t", lexicon=LEXICON,
                      options=replace(EXACT, final_end_shift_s=-0.02)).words[1]
    assert earlier.end_s == pytest.approx(exact.end_s - 0.02)
    floor = segment(em, "ab c", aligner="t", lexicon=LEXICON, options=replace(EXACT, final_end_shift_s=-0.5)).words[1]
    assert floor.start_s == exact.start_s and floor.end_s == pytest.approx(exact.start_s + em.hop_s)  # one frame
    with pytest.raises(ValueError, match="final_end_shift_s"):
        SegmentOptions(final_end_shift_s=-1.0)


def test_a_precomputed_path_gives_the_same_segmentation() -> None:
    from edgeser.alignment.segmenter import align_words, choose_pronunciations, forced_path, plan_words

    em = peaks(PHONES, 40, {3: "s", 6: "æ", 9: "b", 14: "<wb>", 18: "ə"})
    candidates, _ = plan_words(["cab", "a"], em, LEXICON, "error")
    plans = choose_pronunciations(em, candidates)
    opts = SegmentOptions()
    direct = align_words(em, plans, opts, mode="forced", aligner="t")
    assert align_words(em, plans, opts, mode="forced", aligner="t", path=forced_path(em, plans)) == direct
    # and the path given is the one used: a path of the same words 10 frames later moves every word later
    later = peaks(PHONES, 40, {13: "s", 16: "æ", 19: "b", 24: "<wb>", 28: "ə"})
    moved = align_words(em, plans, opts, mode="forced", aligner="t", path=forced_path(later, plans))
    assert [w.label for w in moved.words] == [w.label for w in direct.words] == ["cab", "a"]
    assert all(m.end_s > d.end_s + 0.15 for m, d in zip(moved.words, direct.words, strict=True))
    with pytest.raises(AlignmentError, match="nothing to align"):
        forced_path(em, [])


def test_phones_and_syllables_group_by_word_even_when_squeezed_to_zero_length() -> None:
    from edgeser.alignment.segmenter import Segmentation

    def seg(level: str, label: str, a: float, b: float) -> Segment:
        return Segment(level, label, a, b, 1.0)

    words = (seg("word", "kids", 0.95, 1.22), seg("word", "are", 1.22, 1.35))
    phones = (seg("phone", "k", 0.95, 1.08), seg("phone", "ɪ", 1.08, 1.14), seg("phone", "d", 1.14, 1.22),
              seg("phone", "z", 1.22, 1.22), seg("phone", "ɝ", 1.22, 1.35))
    s = Segmentation(words=words, syllables=(seg("syllable", "kɪdz", 0.95, 1.22), seg("syllable", "ɝ", 1.22, 1.35)),
                     phones=phones, transcript="kids are", mode="forced", confidence=1.0, phone_timing="aligned",
                     aligner="t", duration_s=2.0)
    assert [[p.label for p in g] for g in s.by_word("phone")] == [["k", "ɪ", "d", "z"], ["ɝ"]]
    assert [[x.label for x in g] for g in s.by_word("syllable")] == [["kɪdz"], ["ɝ"]]


def test_a_large_overlap_never_leaves_a_phone_ending_before_it_starts() -> None:
    em = peaks(PHONES, 40, {3: "s", 6: "æ", 9: "b", 10: "<wb>", 11: "ə"})
    opts = replace(SegmentOptions(), overlap_s=0.3)
    seg = segment(em, "cab a", aligner="t", lexicon=LEXICON, options=opts)
    assert seg.words[1].start_s < seg.words[0].end_s + 1e-9
    assert all(p.end_s >= p.start_s for p in (*seg.phones, *seg.syllables))
    assert [p.label for g in seg.by_word("phone") for p in g] == [p.label for p in seg.phones]


def test_pause_marks_split_decoded_words_at_long_silences() -> None:
    """Without a delimiter across a 1 s run of blanks the decoder joined the words on either side."""
    log = np.full((60, len(CHARS.tokens)), np.log(1e-4), np.float32)
    log[:, 0] = 0.0
    log[5, 2] = log[55, 3] = 0.0  # "A" ... 1 s of blank ... "B"
    em = Emissions(log, CHARS, hop_s=0.02)
    marked = em.pause_marked()
    assert int(np.argmax(marked.log_probs[30])) == CHARS.tokens.index("|")
    assert (np.argmax(marked.log_probs, axis=1) == 1).sum() == 1  # one mark, in the long run only
    np.testing.assert_array_equal(em.log_probs, log)  # the original is untouched (forced alignment reads it)


@pytest.mark.integration
def test_long_audio_keeps_its_times_across_hama_chunks() -> None:
    """Chunks of at most 20 s: every time stayed 20 ms later per chunk (10 min: 0.6-0.9 s late), and a decoded
    "word" ran across the cut. The sample placed four times in 70 s is found where it was put, word by word."""
    pytest.importorskip("hama")
    from edgeser.alignment.ctc.hama import HamaAligner
    from edgeser.audio import load_audio

    aligner = HamaAligner()
    wave = load_audio(SAMPLE)
    alone = segment(aligner.emissions(wave), "kids are talking by the door", aligner="hama")
    x = (1e-4 * np.random.default_rng(0).standard_normal(70 * 16000)).astype(np.float32)
    starts = [1.0, 18.9, 37.0, 58.5]  # the second and third straddle the first cuts' search windows
    for s in starts:
        x[int(s * 16000) : int(s * 16000) + wave.size] += wave
    em = aligner.emissions(x)
    assert em.num_frames == x.size // 320 + 1  # as one call gives: one frame per 320 samples, plus one
    forced = segment(em, " ".join(["kids are talking by the door"] * 4), aligner="hama")
    got = [w.start_s for w in forced.words[::6]]
    assert np.allclose(got, [s + alone.words[0].start_s for s in starts], atol=0.05)
    decoded = segment(em, None, aligner="hama")
    assert max(w.end_s - w.start_s for w in decoded.words) < 2.0  # no word across a pause


def test_textgrid_round_trips_through_praatio(tmp_path: Path) -> None:
    """The TextGrid we write is read back by praatio (a maintained TextGrid library) tier for tier, interval for
    interval, quotes and IPA labels included."""
    textgrid = pytest.importorskip("praatio.textgrid", reason="praatio reads TextGrids (pip install praatio)")
    em = peaks(CHARS, 30, {5: "A", 8: "B", 12: "|", 20: "C"})
    seg = segment(em, 'ab "c"', aligner="t", lexicon=LEXICON, options=EXACT)
    seg = dataclasses.replace(seg, words=[dataclasses.replace(seg.words[0], label='a"b ʃ'), *seg.words[1:]])
    path = tmp_path / "out.TextGrid"
    path.write_text(to_textgrid(seg), encoding="utf-8")
    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    assert grid.tierNames == ("words", "syllables", "phones")
    for name, segments in (("words", seg.words), ("syllables", seg.syllables), ("phones", seg.phones)):
        read = [(round(e.start, 4), round(e.end, 4), e.label) for e in grid.getTier(name).entries]
        assert read == [(round(s.start_s, 4), round(s.end_s, 4), s.label) for s in segments], name


def test_the_beam_decoder_agrees_with_pyctcdecode() -> None:
    """ctc-beam-decoder replaces pyctcdecode (whose only release declares numpy<2): where both are installed, their
    top beams over edgeser's labels (blank "", delimiter " ", private-use characters) are the same
    (edgeser_benchmarks.studies.beam_agreement runs more cases and times both)."""
    pytest.importorskip("ctc_beam_decoder")
    pytest.importorskip("pyctcdecode", reason="the reference, installed only with --no-deps (numpy<2 declared)")
    from edgeser_benchmarks.studies.beam_agreement import compare

    result = compare(cases=40, seed=1)
    assert result["identical"] == result["cases"] == 40
