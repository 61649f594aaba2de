"""The default model: the ``default`` name, the shipped bundle, and what a head records of its segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeser import EmotionRecognizer, default
from edgeser.errors import BundleError
from edgeser.model.bundle import Bundle
from tests.conftest import SAMPLE, with_text_encoder


@pytest.fixture(scope="module")
def parts(fixture_bundles: dict[str, Path]) -> dict[str, Path]:
    """A speech + fusion bundle without text (like the shipped parts), and a text-only bundle (committed fixtures:
    no torch needed)."""
    return {"parts": fixture_bundles["parts"], "text": fixture_bundles["text"], "speech": fixture_bundles["parts"]}


def test_parts_without_text_are_refused_with_the_fix(parts: dict[str, Path]) -> None:
    with pytest.raises(BundleError, match="no text encoder"):
        EmotionRecognizer.from_bundle(parts["parts"])


def test_the_default_name_resolves_to_the_configured_folder(parts: dict[str, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert default.resolve("bundles/mine") == Path("bundles/mine")
    monkeypatch.setenv("EDGESER_DEFAULT_BUNDLE", str(tmp_path / "absent"))
    with pytest.raises(BundleError, match="EDGESER_DEFAULT_BUNDLE points here"):
        default.resolve("default")
    with_text_encoder(parts["parts"], parts["text"], tmp_path / "built")
    monkeypatch.setenv("EDGESER_DEFAULT_BUNDLE", str(tmp_path / "built"))
    assert default.resolve("default") == tmp_path / "built"
    assert EmotionRecognizer.from_bundle("default").bundle.path == (tmp_path / "built").resolve()


def test_a_head_trained_on_hama_segments_predicts_with_hama_segments(parts: dict[str, Path], tmp_path: Path) -> None:
    """The segmenter a head was trained with is recorded and used again at prediction (the default model's
    compact CTC head has only heard two sentences, so it is trained on hama's segments)."""
    pytest.importorskip("hama")
    import json

    full = tmp_path / "full"
    with_text_encoder(parts["parts"], parts["text"], full)
    raw = json.loads((full / "bundle.json").read_text())
    assert raw["fusion"]["segmenter"] == "bundle"
    raw["fusion"]["segmenter"] = "hama"
    (full / "bundle.json").write_text(json.dumps(raw))
    rec = EmotionRecognizer.from_bundle(full)
    seg = rec._segment_for_fusion(rec.encode(SAMPLE), rec.load_audio(SAMPLE), "kids are talking by the door")
    assert seg.aligner.startswith("hama") and [w.label for w in seg.words][-1] == "door"
    result = rec.predict(SAMPLE)  # no transcript: hama decodes phones, P2G spells them for the text branch
    assert result.segmentation.aligner.startswith("hama") and "door" in result.transcript.lower()
    raw["fusion"]["segmenter"] = "whisper"
    (full / "bundle.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="segmenter"):
        Bundle.load(full, verify_hashes=False)


def test_warm_up_runs_every_graph_of_the_shipped_model() -> None:
    """The shipped default: a complete bundle (no build), warm-up touches its graphs and its segmenter."""
    pytest.importorskip("hama")
    rec = EmotionRecognizer.from_bundle("default")
    assert rec.bundle.path == default.SHIPPED.resolve() and rec.bundle.manifest.fusion is not None
    rec.warm_up()  # raises if a graph or the segmenter cannot run
    result = rec.predict(SAMPLE, "kids are talking by the door")
    assert result.label in rec.bundle.manifest.labels and abs(sum(result.probabilities.values()) - 1) < 1e-4


def test_segments_are_cut_with_the_boundary_rule_the_head_was_trained_with(parts: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    """A head records the boundary rule of its training segments; prediction uses it, not the library's
    current defaults (which may have been retuned since), and a malformed rule is refused at load."""
    pytest.importorskip("hama")
    import json

    from edgeser.alignment.aligner import segment_wave
    from edgeser.options import SegmentOptions

    full = tmp_path / "full"
    with_text_encoder(parts["parts"], parts["text"], full)
    raw = json.loads((full / "bundle.json").read_text())
    assert raw["fusion"]["boundaries"] == SegmentOptions().boundary_rule()  # add_fusion records the current rule
    rule = SegmentOptions.exact().boundary_rule()  # a head trained on raw spike times
    raw["fusion"].update(segmenter="hama", boundaries=rule)
    (full / "bundle.json").write_text(json.dumps(raw))
    rec = EmotionRecognizer.from_bundle(full)
    wave = rec.load_audio(SAMPLE)
    seg = rec._segment_for_fusion(rec.encode(wave, sample_rate=16000), wave, "kids are talking by the door",
                                 options=SegmentOptions(on_unknown="skip"))
    exact = segment_wave(wave, "kids are talking by the door", options=SegmentOptions.exact())
    current = segment_wave(wave, "kids are talking by the door")
    assert [(w.start_s, w.end_s) for w in seg.words] == [(w.start_s, w.end_s) for w in exact.words]
    assert [w.start_s for w in seg.words] != [w.start_s for w in current.words]
    raw["fusion"]["boundaries"] = {**rule, "start_shift_ms": 90}
    (full / "bundle.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=r"boundaries.*start_shift_ms"):
        Bundle.load(full, verify_hashes=False)


def test_feature_cache_key_follows_the_boundary_rule(parts: dict[str, Path], tmp_path: Path) -> None:
    """Cached training features cut with one boundary rule are not reused for another (frame features,
    which no segment touches, are)."""
    pytest.importorskip("torch", reason="the feature cache is the torch side's (edgeser[export])")
    import json

    from edgeser.options import SegmentOptions
    from edgeser_export.features import cache_key

    full = tmp_path / "full"
    with_text_encoder(parts["parts"], parts["text"], full)
    before = EmotionRecognizer.from_bundle(full)
    raw = json.loads((full / "bundle.json").read_text())
    raw["fusion"]["boundaries"] = SegmentOptions.exact().boundary_rule()
    (full / "bundle.json").write_text(json.dumps(raw))
    after = EmotionRecognizer.from_bundle(full)
    assert cache_key(before, ("frame", "phone"), False, -1) != cache_key(after, ("frame", "phone"), False, -1)
    assert cache_key(before, ("frame",), False, -1) == cache_key(after, ("frame",), False, -1)
