"""The numpy CTC Viterbi against a brute-force reference, and its failure modes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeser.alignment.ctc import align as align_module
from edgeser.alignment.ctc import align_states, forced_align, merge_tokens
from edgeser.errors import AlignmentError


def collapse(path: tuple[int, ...], blank: int) -> list[int]:
    out, prev = [], None
    for p in path:
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def brute_force(log_probs: np.ndarray, targets: list[int], blank: int) -> tuple[float, set[tuple[int, ...]]]:
    """Best total score over every frame labelling that collapses to ``targets``, and all labellings reaching it."""
    frames, classes = log_probs.shape
    best, paths = -np.inf, set()
    for path in itertools.product(range(classes), repeat=frames):
        if collapse(path, blank) != targets:
            continue
        score = float(log_probs[np.arange(frames), path].sum())
        if score > best + 1e-9:
            best, paths = score, {path}
        elif abs(score - best) <= 1e-9:
            paths.add(path)
    return best, paths


def random_log_probs(rng: np.random.Generator, frames: int, classes: int) -> np.ndarray:
    x = rng.standard_normal((frames, classes)) * 2
    return (x - np.log(np.exp(x).sum(1, keepdims=True))).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), frames=st.integers(1, 7), classes=st.integers(2, 3), n=st.integers(1, 3),
       blank=st.integers(0, 2))
def test_viterbi_finds_a_best_path(seed: int, frames: int, classes: int, n: int, blank: int) -> None:
    blank = blank % classes
    rng = np.random.default_rng(seed)
    log_probs = random_log_probs(rng, frames, classes)
    targets = [int(c) for c in rng.choice([c for c in range(classes) if c != blank], size=n)]
    best, paths = brute_force(log_probs, targets, blank)
    if not paths:
        with pytest.raises(AlignmentError, match="needs at least"):
            forced_align(log_probs, np.array(targets), blank)
        return
    labels, scores = forced_align(log_probs, np.array(targets), blank)
    assert tuple(int(x) for x in labels) in paths  # a best path (identical up to ties)
    assert float(scores.sum()) == pytest.approx(best, abs=1e-4)
    np.testing.assert_allclose(scores, log_probs[np.arange(frames), labels])


def test_repeated_labels_need_a_blank_between_them() -> None:
    log_probs = np.log(np.full((3, 2), 0.5, dtype=np.float32))
    labels, _ = forced_align(log_probs, np.array([1, 1]), blank=0)
    assert labels.tolist() == [1, 0, 1]
    with pytest.raises(AlignmentError, match=r"needs at least 3 frames \(2 tokens, 1 repeated pairs"):
        forced_align(log_probs[:2], np.array([1, 1]), blank=0)


def test_ties_follow_torchaudio_order() -> None:
    """Uniform posteriors: every feasible path ties. torchaudio's kernel stays in a state unless a move is
    strictly better and ends on the last label rather than the final blank on a tie, which, traced back,
    puts the first label on frame 0 and holds the last one (worked by hand from its C++ source)."""
    log_probs = np.log(np.full((5, 3), 1 / 3, dtype=np.float32))
    labels, _ = forced_align(log_probs, np.array([1, 2]), blank=0)
    assert labels.tolist() == [1, 2, 2, 2, 2]


def test_states_and_spans() -> None:
    log_probs = np.log(np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1],
                                 [0.1, 0.1, 0.8]], dtype=np.float32))
    states = align_states(log_probs, np.array([1, 2]))
    assert states.tolist() == [-1, 0, 0, -1, 1]
    spans = merge_tokens(states, log_probs[np.arange(5), [0, 1, 1, 0, 2]])
    assert [(s.index, s.start, s.end) for s in spans] == [(0, 1, 3), (1, 4, 5)]
    assert spans[0].score == pytest.approx(np.log(0.8))


def test_windowed_pass_gives_the_identical_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    log_probs = random_log_probs(rng, 500, 12)
    targets = rng.integers(1, 12, size=120)
    full = align_states(log_probs, targets)
    monkeypatch.setattr(align_module, "_FULL_MEMORY_LIMIT", 0)
    for window in (1, 7, 64, 499, 500):
        np.testing.assert_array_equal(align_states(log_probs, targets, window=window), full)


@pytest.mark.parametrize("targets,blank,error,message", [
    ([], 0, AlignmentError, "no tokens"),
    ([0, 1], 0, ValueError, "must not contain the blank"),
    ([5], 0, ValueError, "target ids"),
    ([1], 9, ValueError, "blank id 9"),
])
def test_bad_targets(targets: list[int], blank: int, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        forced_align(np.zeros((4, 3), np.float32), np.array(targets, dtype=np.int64), blank)


def test_hama_tensor_names_come_from_its_public_session() -> None:
    """The aligner finds hama's graph tensors by name on ``ASRModel.session`` (not hama's private attributes); the
    names are the ones hama resolves for itself, and a graph without them is refused by name."""
    pytest.importorskip("hama", reason="the default aligner is hama's phoneme recognizer (edgeser[align])")
    from edgeser.alignment.ctc.hama import HamaAligner, _tensor
    from edgeser.errors import BackendError

    aligner = HamaAligner()
    m = aligner._model
    assert aligner._inputs == (m._waveform_input_name, m._waveform_lengths_input_name)
    assert aligner._outputs == [m._log_probs_output_name, m._out_lengths_output_name]
    assert _tensor(["x", "waveform.1"], "waveform") == "waveform.1"
    with pytest.raises(BackendError, match="no tensor 'log_probs'"):
        _tensor(["logits"], "log_probs")
