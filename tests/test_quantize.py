"""Lower-precision variants: each precision writes its recipe, the guard falls back or refuses, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgeser import EmotionRecognizer
from edgeser.datasets import Dataset, Utterance

pytest.importorskip("torch")
pytestmark = pytest.mark.export

from calibration.sets import CalibrationSet, build  # noqa: E402
from export.quantize import QuantizationError, QuantizeConfig, agreement, quantize_bundle  # noqa: E402


@pytest.fixture(scope="module")
def cset(tmp_path_factory: pytest.TempPathFactory) -> CalibrationSet:
    """4 items of 1-2 s cut from the bundled sample (real speech) at different gains."""
    from tests.conftest import SAMPLE

    root = tmp_path_factory.mktemp("q")
    wave, sr = sf.read(SAMPLE, dtype="float32")
    utts = []
    for i, (label, gain) in enumerate([("neutral", 1.0), ("happy", 0.5), ("angry", 1.5), ("sad", 0.3)]):
        path = root / f"u{i}.wav"
        sf.write(path, np.clip(wave * gain, -1, 1), sr)
        utts.append(Utterance(f"u{i}", path, f"s{i % 2}", f"s{i % 2}", label, "kids are talking by the door"))
    return build(Dataset("sample", tuple(utts)), root / "set", n=4, min_s=1.0, max_s=2.0)


def test_dynamic_int8_records_its_recipe_and_loads(tiny_bundle: Path, cset: CalibrationSet, tmp_path: Path) -> None:
    report = quantize_bundle(tiny_bundle, tmp_path / "v", QuantizeConfig("int8-dynamic"), cset)
    rec = EmotionRecognizer.from_bundle(tmp_path / "v")
    q = rec.speech.provenance["quantization"]
    assert q["precision"] == "int8-dynamic" and q["calibration"]["sha256"] == cset.sha256
    assert q["guard"]["passed"] and report["graphs"]["speech"]["agreement"]["hidden_states_cosine"] > 0.9
    out = rec.encode(cset.audio(0), sample_rate=16000)
    assert np.isfinite(out.hidden_states).all()


def test_static_int8_falls_back_to_float_for_sensitive_nodes(tiny_bundle: Path, cset: CalibrationSet,
                                                             tmp_path: Path) -> None:
    """The tiny random speech model loses too much in INT8 (cosine ~0.75 here); the guard keeps the
    lowest-SQNR nodes in float until the cosine to FP32 passes."""
    config = QuantizeConfig("int8", graphs=("speech",), min_cosine=0.99, fallback_fraction=0.25)
    report = quantize_bundle(tiny_bundle, tmp_path / "v", config, cset)
    speech = report["graphs"]["speech"]
    assert speech["kept_float"] and "SQNR" in speech["kept_because"]
    assert speech["agreement"]["hidden_states_cosine"] >= 0.99
    m = json.loads((tmp_path / "v" / "bundle.json").read_text())
    assert m["speech"]["provenance"]["quantization"]["kept_float"] == speech["kept_float"]
    assert "quantization" not in m["text"]["provenance"]  # not asked for: copied as it was


def test_a_variant_that_fails_its_guard_is_never_written(tiny_bundle: Path, cset: CalibrationSet,
                                                         tmp_path: Path) -> None:
    config = QuantizeConfig("int8-dynamic", graphs=("speech",), min_cosine=1.01)  # impossible to pass
    with pytest.raises(QuantizationError, match="nothing was written"):
        quantize_bundle(tiny_bundle, tmp_path / "v", config, cset)
    assert not (tmp_path / "v").exists() and not list(tmp_path.glob(".v*"))


def test_static_int8_needs_calibration_and_configs_are_checked(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizationError, match="calibration"):
        quantize_bundle(tiny_bundle, tmp_path / "v", QuantizeConfig("int8"), None)
    with pytest.raises(ValueError, match="precision"):
        QuantizeConfig("int4")
    with pytest.raises(ValueError, match="method"):
        QuantizeConfig("int8", method="mse")


def test_agreement_measures() -> None:
    a = {"logits": np.array([[[1.0, 0.0], [0.0, 1.0]]]), "ids": np.array([1])}
    assert agreement(a, a) == {"logits_cosine": 1.0, "logits_argmax_agreement": 1.0}
    b = {"logits": np.array([[[0.0, 1.0], [0.0, 1.0]]]), "ids": np.array([1])}
    got = agreement(a, b)
    assert got["logits_cosine"] == pytest.approx(0.5) and got["logits_argmax_agreement"] == 0.5


def _qdq_counts(path: Path) -> dict[str, int]:
    import onnx

    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    return {op: ops.count(op) for op in ("QuantizeLinear", "DequantizeLinear", "MatMul", "Conv", "MatMulInteger",
                                         "DynamicQuantizeLinear")}


def test_qdq_node_counts(tiny_bundle: Path, cset: CalibrationSet, tmp_path: Path) -> None:
    """Static INT8 puts a DequantizeLinear on both inputs of every quantized MatMul/Conv (weights and
    activations) and none on the ones kept in float; dynamic INT8 has no Q/DQ but integer MatMuls."""
    import onnx

    report = quantize_bundle(tiny_bundle, tmp_path / "s", QuantizeConfig("int8", graphs=("speech",), min_cosine=0.0),
                             cset)
    model = onnx.load(str(tmp_path / "s" / "speech.onnx"))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    targets = [n for n in model.graph.node if n.op_type in ("MatMul", "Conv")]
    dq_fed = [n for n in targets if all(producers.get(i) == "DequantizeLinear" for i in n.input[:2])]
    assert len(dq_fed) == report["graphs"]["speech"]["quantized_nodes"] == len(targets) > 0
    counts = _qdq_counts(tmp_path / "s" / "speech.onnx")
    assert counts["DequantizeLinear"] >= 2 * len(targets) and counts["QuantizeLinear"] >= len(targets)
    quantize_bundle(tiny_bundle, tmp_path / "d", QuantizeConfig("int8-dynamic", graphs=("speech",)), cset)
    dynamic = _qdq_counts(tmp_path / "d" / "speech.onnx")
    assert dynamic["MatMulInteger"] > 0 and dynamic["QuantizeLinear"] == 0 and dynamic["Conv"] > 0
