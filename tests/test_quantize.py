"""Lower-precision variants: each precision writes its recipe, the guard falls back or refuses, nothing half-written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgeser import EmotionRecognizer
from edgeser.datasets import Dataset, Utterance
from edgeser.model.bundle import Bundle

pytest.importorskip("torch")
pytestmark = pytest.mark.export

from edgeser.errors import InputError  # noqa: E402
from edgeser_calibration.sets import CalibrationSet, build  # noqa: E402
from edgeser_export.guard import agreement  # noqa: E402
from edgeser_export.quantize import QuantizationError, QuantizeConfig, first_convolution, quantize_bundle  # noqa: E402


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
    config = QuantizeConfig("int8", method="minmax", graphs=("speech",), min_cosine=0.99, fallback_fraction=0.25)
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


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_calibration_takes_utterances_of_different_lengths(method: str, tiny_bundle: Path,
                                                                     cset: CalibrationSet, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """ONNX Runtime's histogram calibrators stack each tensor over every feed into one array: utterances of
    different lengths made ``--method percentile`` and ``entropy`` end in a traceback. They calibrate now."""
    assert len({cset.audio(i).size for i in range(len(cset))}) > 1
    config = QuantizeConfig("int8", method=method, graphs=("speech",), min_cosine=0.0, fallback_steps=0)
    report = quantize_bundle(tiny_bundle, tmp_path / "v", config, cset)
    assert report["graphs"]["speech"]["quantized_nodes"] > 0
    q = EmotionRecognizer.from_bundle(tmp_path / "v").speech.provenance["quantization"]
    assert q["method"] == method
    assert "histogram" not in capsys.readouterr().out  # ONNX Runtime's prints stay off standard output


def test_method_auto_is_dynamic_for_cpu_avx2_and_minmax_for_the_others() -> None:
    assert QuantizeConfig("int8", target="cpu-avx2").resolved().method == "dynamic"
    for target in ("cpu-vnni", "arm", "tensorrt"):
        assert QuantizeConfig("int8", target=target).resolved().method == "minmax"
    assert QuantizeConfig("int8", target="cpu-avx2", method="minmax").resolved().method == "minmax"
    assert QuantizeConfig("int8").resolved().method in ("dynamic", "minmax")  # this CPU's target's


def test_a_refused_int8_variant_suggests_the_methods_it_did_not_use(tiny_bundle: Path, cset: CalibrationSet,
                                                                    tmp_path: Path) -> None:
    config = QuantizeConfig("int8", method="percentile", graphs=("speech",), min_cosine=1.01, fallback_steps=0)
    with pytest.raises(QuantizationError, match="nothing was written") as refused:
        quantize_bundle(tiny_bundle, tmp_path / "v", config, cset)
    assert "Try --method minmax or entropy or dynamic," in str(refused.value)


def test_method_dynamic_calibrates_the_convolutions_and_ranges_matmul_inputs_as_the_graph_runs(
        tiny_bundle: Path, cset: CalibrationSet, tmp_path: Path) -> None:
    import onnx

    config = QuantizeConfig("int8", method="dynamic", graphs=("speech",), min_cosine=0.0, fallback_steps=0)
    quantize_bundle(tiny_bundle, tmp_path / "v", config, cset)
    graph = onnx.load(str(tmp_path / "v" / "speech.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops  # MatMul inputs quantized when it runs
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    first = onnx.load(str(tiny_bundle / "speech.onnx"), load_external_data=False)
    kept = set(first_convolution(first))  # the first convolution (reading the audio here) stays float32
    assert len(kept) == 1 and all(n.input[0] not in dequantized for n in convs if n.name in kept)
    assert len(convs) > 1 and all(n.input[0] in dequantized for n in convs if n.name not in kept)  # calibrated Q/DQ
    assert not any(n.op_type == "MatMul" and n.input[0] in dequantized for n in graph.node)
    q = EmotionRecognizer.from_bundle(tmp_path / "v").speech.provenance["quantization"]
    assert q["method"] == "dynamic" and q["per_channel"]


def test_the_dynamic_fallback_ranks_the_matmuls_too(tiny_bundle: Path, cset: CalibrationSet, tmp_path: Path) -> None:
    """A dynamically quantized MatMul has no Q/DQ pair for ONNX Runtime's debugger to match: its output is compared
    with the float model's, so the fallback can keep it in float (it could move back only convolutions before)."""
    config = QuantizeConfig("int8", method="dynamic", graphs=("speech",), min_cosine=1.01, fallback_fraction=1.0,
                            fallback_steps=1)
    with pytest.raises(QuantizationError, match="after 1 fallback steps"):
        quantize_bundle(tiny_bundle, tmp_path / "v", config, cset)
    # 0.9995: above what every node quantized agrees (0.9989 here), so that the fallback has to move nodes back
    config = replace(config, min_cosine=0.9995, fallback_fraction=0.25, fallback_steps=4)
    speech = quantize_bundle(tiny_bundle, tmp_path / "v", config, cset)["graphs"]["speech"]
    kept = set(speech["kept_float"])
    assert any(name in kept for name in _nodes(tiny_bundle, "MatMul")), speech["kept_because"]


def test_the_fallback_stops_when_every_ranked_node_is_in_float(tiny_bundle: Path, cset: CalibrationSet,
                                                                tmp_path: Path) -> None:
    """One step moves every ranked node back (fraction 1); the next would score the same variant again."""
    config = QuantizeConfig("int8", graphs=("speech",), min_cosine=1.01, fallback_fraction=1.0, fallback_steps=4)
    with pytest.raises(QuantizationError, match="after 1 fallback steps"):
        quantize_bundle(tiny_bundle, tmp_path / "v", config, cset)


def test_dynamic_int8_is_refused_for_tensorrt() -> None:
    with pytest.raises(InputError, match="TensorRT"):
        QuantizeConfig("int8", method="dynamic", target="tensorrt")


def _nodes(bundle: Path, op_type: str) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(bundle / "speech.onnx"), load_external_data=False).graph.node
            if n.op_type == op_type]


def test_a_refusal_names_the_limit_that_refused_it() -> None:
    """A variant that kept its UA but changed too many labels was told to try a larger --ua-budget, which passes
    nothing; the advice names the limit the variant failed."""
    from edgeser_export.quantize import refusal_advice

    config = QuantizeConfig("int8", method="dynamic", target="cpu-avx2")
    labels = refusal_advice(config, ua_short=False, labels_short=True)
    assert "a lower --min-label-agreement (now 0.97)" in labels and "--ua-budget" not in labels
    assert labels.startswith("--method minmax or entropy or percentile, a larger calibration set, or ")
    ua = refusal_advice(config, ua_short=True, labels_short=False)
    assert "a larger --ua-budget (now 1 points)" in ua and "--min-label-agreement" not in ua
    cosine = refusal_advice(config, ua_short=False, labels_short=False)
    assert cosine == "--method minmax or entropy or percentile, or a larger calibration set"
    assert "dynamic" not in refusal_advice(replace(config, method="minmax", target="tensorrt"), ua_short=True,
                                           labels_short=False)
    assert refusal_advice(QuantizeConfig("int8-dynamic"), ua_short=True, labels_short=False) == (
        "static INT8 (--precision int8), or a larger --ua-budget (now 1 points)")


def test_min_label_agreement_is_a_share() -> None:
    with pytest.raises(InputError, match="min_label_agreement"):
        QuantizeConfig("int8", min_label_agreement=1.5)


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

    report = quantize_bundle(tiny_bundle, tmp_path / "s", QuantizeConfig("int8", method="minmax", graphs=("speech",),
                                                                       min_cosine=0.0), cset)
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


def test_fallback_finds_a_node_made_sensitive_on_purpose(tmp_path: Path) -> None:
    """A two-layer graph whose hidden activation has one channel of rare, huge spikes (a ReLU over a
    shifted, 1000x scaled projection): uint8 quantization of that activation flattens every other channel,
    the output's cosine to FP32 collapses, the SQNR ranking puts the two nodes around it first, and keeping
    them in float restores the output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgeser_calibration.readers import OrtReader
    from edgeser_export.guard import mean_agreement
    from edgeser_export.quantize import quantize_graph, sensitivity

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 16)).astype(np.float32) / 4
    w1[:, 0] = 0
    w1[0, 0] = 1000.0  # channel 0 = relu(1000 * x0 - 3000): zero unless x0 > 3, then hundreds
    b1 = np.zeros(16, np.float32)
    b1[0] = -3000.0
    w2 = rng.standard_normal((16, 8)).astype(np.float32) / 4
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["a"], name="first"), helper.make_node("Add", ["a", "b1"], ["z"]),
         helper.make_node("Relu", ["z"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["y"], name="second")],
        "spiky", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "f.onnx"))
    feeds = [{"x": rng.standard_normal((512, 16)).astype(np.float32)} for _ in range(4)]
    assert any((f["x"][:, 0] > 3.3).any() for f in feeds)  # the spikes occur in calibration data

    config = QuantizeConfig("int8", method="minmax")  # calibrated ranges: what the spikes break
    quantize_graph(tmp_path / "f.onnx", tmp_path / "q.onnx", config, OrtReader(feeds))
    broken = mean_agreement(tmp_path / "f.onnx", tmp_path / "q.onnx", feeds)["y_cosine"]
    ranked = sensitivity(tmp_path / "q.pre.onnx", tmp_path / "q.onnx", OrtReader(feeds), tmp_path)
    top = [name for name, _ in ranked[:2]]  # the MatMul reading the spikes and the projection making them
    assert set(top) == {"second", "first/MatMulAddFusion"} and dict(ranked)["second"] < 10  # dB
    quantize_graph(tmp_path / "f.onnx", tmp_path / "k.onnx", config, OrtReader(feeds), exclude=top)
    kept = mean_agreement(tmp_path / "f.onnx", tmp_path / "k.onnx", feeds)["y_cosine"]
    assert broken < 0.9 and kept > 0.999


@pytest.mark.parametrize("precision", ["fp16", "int8-dynamic"])
def test_the_whisper_front_end_stays_float32(precision: str, tmp_path: Path) -> None:
    """The default's log-mel front end (STFT as a Conv, power, mel MatMul, log) is kept in float32 and reads
    the audio unrounded: FP16 frames then match FP32 to 1e-4 in cosine (the whole graph in FP16 gave frames that
    cost 8.3 UA),
    and dynamic INT8 leaves the mel filterbank's MatMul in float."""
    import onnx
    import onnxruntime as ort

    from edgeser.audio import load_audio
    from edgeser_export.quantize import front_end_nodes, quantize_graph
    from tests.conftest import SAMPLE

    src = Path(EmotionRecognizer.from_bundle("default").bundle.file("speech.onnx"))
    front = front_end_nodes(onnx.load(str(src)))
    graph = onnx.load(str(src))
    ops = {n.name: n.op_type for n in graph.graph.node}
    assert {"Conv", "MatMul", "Log"} <= {ops[n] for n in front} and len(front) < len(ops) / 2
    quantize_graph(src, tmp_path / "v.onnx", QuantizeConfig(precision), None)
    variant = onnx.load(str(tmp_path / "v.onnx"))
    if precision == "fp16":
        readers = [n for n in variant.graph.node if "input_values" in n.input]
        assert readers and all(n.op_type != "Cast" for n in readers)  # no rounding of the audio to float16
    else:
        assert {n.name: n.op_type for n in variant.graph.node}["node_matmul"] == "MatMul"
    wave = load_audio(SAMPLE)[None]
    feed = {"input_values": wave, "attention_mask": np.ones(wave.shape, np.int64)}
    ref, out = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feed)[0][0, 0]
                for p in (src, tmp_path / "v.onnx"))
    cosine = (ref * out).sum(-1) / np.linalg.norm(ref, axis=-1) / np.linalg.norm(out, axis=-1)
    assert cosine.min() > (0.9999 if precision == "fp16" else 0.98)  # base block 3: deeper than tiny.en's 2


def test_dynamic_int8_keeps_the_first_convolution_after_the_front_end_in_float() -> None:
    """Under ``--method dynamic`` the convolution reading the log-mel (Whisper's conv1) stays float32: not the
    front end's STFT convolution (float anyway), not conv2."""
    import onnx

    from edgeser_export.quantize import first_convolution, front_end_nodes

    graph = onnx.load(str(EmotionRecognizer.from_bundle("default").bundle.file("speech.onnx")),
                      load_external_data=False)
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    front = set(front_end_nodes(graph))
    assert [c.name for c in convs if c.name not in front] == ["node_conv1d_1", "node_conv1d_2"]
    assert first_convolution(graph) == ["node_conv1d_1"]
    mel = next(c for c in convs if c.name == "node_conv1d_1").input[0]  # it reads the front end's output
    assert any(mel in n.output for n in graph.graph.node if n.name in front)


def test_round_trip_casts_are_dropped_and_single_casts_kept() -> None:
    import onnx
    from onnx import TensorProto, helper

    from edgeser_export.quantize import drop_round_trip_casts

    nodes = [helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16, name="down"),
             helper.make_node("Cast", ["x16"], ["x32"], to=TensorProto.FLOAT, name="up"),
             helper.make_node("Log", ["x32"], ["fe"], name="front"),
             helper.make_node("Cast", ["fe"], ["fe16"], to=TensorProto.FLOAT16, name="to_half"),
             helper.make_node("Relu", ["fe16"], ["r"], name="half_op"),
             helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT, name="out")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph)
    assert drop_round_trip_casts(model) == 1
    names = [n.name for n in model.graph.node]
    assert names == ["front", "to_half", "half_op", "out"] and model.graph.node[0].input[0] == "x"
    onnx.checker.check_model(model)


def test_unseen_speakers_check_sees_what_a_variant_costs_new_speakers() -> None:
    """When the head has heard every validation speaker its UA cannot drop (100 for parent and variant alike);
    the check trains the head's recipe (or a probe) on the parent's frames of some speakers and scores the others
    with each encoder's frames."""
    import types

    from edgeser_export.guard import UnseenSpeakers, blind_validation

    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(4), 50)
    groups = np.repeat([f"s{i}" for i in range(10)], 20)
    centres = rng.standard_normal((4, 16)) * 2
    parent = [centres[y] + rng.standard_normal((12, 16)) for y in labels]  # 12 frames per utterance
    broken = [f + rng.standard_normal(f.shape) * 6 for f in parent]  # errors that swamp the class structure
    config = {"speech_dim": 16, "text_dim": 4, "dim": 16, "heads": 2, "levels": ["frame"], "early": False,
              "late": True, "use_text": False, "labels": ["neutral", "happy", "angry", "sad"], "num_classes": 4,
              "pooling": "statistics"}
    for provenance in ({"config": config, "train": {"epochs": 10}}, {}):  # the head's recipe; a probe
        manifest = types.SimpleNamespace(labels=("neutral", "happy", "angry", "sad"),
                                         fusion=types.SimpleNamespace(provenance=provenance))
        check = UnseenSpeakers(manifest, parent, labels, groups)  # type: ignore[arg-type]
        assert check.head == bool(provenance)
        same = check.check([f.copy() for f in parent])
        assert same["drop_points"] == 0 and same["parent_ua"] > 0.6 and same["folds"] == 5  # chance: 0.25
        assert same["label_agreement"] == 1.0
        worse = check.check(broken)
        assert worse["drop_points"] > 20 and worse["label_agreement"] < 0.7
        # a variant whose errors move a few labels: counted, however the UA comes out
        nudged = check.check([f + rng.standard_normal(16) * 2 for f in parent])  # each utterance's mean moved
        assert 0.5 < nudged["label_agreement"] < 0.99
    trained = types.SimpleNamespace(fusion=types.SimpleNamespace(provenance={"train_groups": ["s0", "s1"]}))
    val = Dataset("v", tuple(Utterance(f"u{i}", None, g, g, "neutral", None) for i, g in enumerate(["s0", "s1"])))
    assert blind_validation(trained, val)  # type: ignore[arg-type]
    assert not blind_validation(trained, Dataset("v", (*val.utterances, Utterance("x", None, "s9", "s9", "sad",
                                                                                     None))))  # type: ignore[arg-type]


def test_target_tensorrt_writes_symmetric_signed_int8_qdq_on_the_default_model(cset: CalibrationSet,
                                                                               tmp_path: Path) -> None:
    """--target tensorrt on the shipped default model's speech and fusion graphs: every Q/DQ zero point is a signed
    INT8 zero and no integer op is left (what TensorRT's ONNX parser imports); the cpu target keeps unsigned
    activations with zero points, which the same check refuses; int8-dynamic cannot target TensorRT."""
    import onnx

    from edgeser_export.tensorrt import tensorrt_qdq_problems

    report = quantize_bundle("default", tmp_path / "trt", QuantizeConfig("int8", graphs=("speech", "fusion"),
                                                                        target="tensorrt", min_cosine=0.0,
                                                                        ua_budget=100.0), cset)
    for graph in ("speech", "fusion"):
        model = onnx.load(str(tmp_path / "trt" / f"{graph}.onnx"))
        assert _qdq_counts(tmp_path / "trt" / f"{graph}.onnx")["QuantizeLinear"] > 0, graph
        assert tensorrt_qdq_problems(model) == [], graph
        zero_points = [t for t in model.graph.initializer if t.name.endswith("_zero_point")]
        assert zero_points and all(t.data_type == onnx.TensorProto.INT8 for t in zero_points)
    assert report["graphs"]["speech"]["quantized_nodes"] > 0
    assert Bundle.load(tmp_path / "trt").manifest.speech.provenance["quantization"]["target"] == "tensorrt"
    quantize_bundle("default", tmp_path / "cpu", QuantizeConfig("int8", graphs=("speech",), min_cosine=0.0,
                                                                ua_budget=100.0), cset)
    problems = tensorrt_qdq_problems(onnx.load(str(tmp_path / "cpu" / "speech.onnx")))
    assert problems and any("uint8" in p for p in problems)
    with pytest.raises(ValueError, match="MatMulInteger"):
        QuantizeConfig("int8-dynamic", target="tensorrt")
    with pytest.raises(ValueError, match="target"):
        QuantizeConfig("int8", target="jetson")


def test_cpu_avx2_target_keeps_weights_to_7_bits_and_records_the_cpu(cset: CalibrationSet, tmp_path: Path) -> None:
    """--target cpu-avx2 on the default's speech graph: every int8 weight within [-64, 64] (two products of a
    uint8 activation and such a weight cannot overflow the int16 sums of AVX2's vpmaddubsw), where cpu-vnni uses
    the full [-127, 127]; bundle.json records the scheme and the flags of the CPU that validated it; auto picks
    this CPU's scheme; weights left in float keep the parent's float16 storage."""
    import onnx
    from onnx import numpy_helper

    from edgeser import system

    def weight_range(path: Path) -> int:
        model = onnx.load(str(path))
        dequantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
        dequantized |= {n.input[1] for n in model.graph.node if n.op_type == "MatMulInteger"}  # --method dynamic
        weights = [numpy_helper.to_array(t) for t in model.graph.initializer
                   if t.name in dequantized and t.data_type == onnx.TensorProto.INT8 and t.dims]
        assert weights
        return int(max(np.abs(w.astype(np.int64)).max() for w in weights))

    for target, widest in (("cpu-avx2", 64), ("cpu-vnni", 127)):
        quantize_bundle("default", tmp_path / target, QuantizeConfig("int8", graphs=("speech",), target=target,
                                                                     min_cosine=0.0, ua_budget=100.0), cset)
        assert weight_range(tmp_path / target / "speech.onnx") == widest, target
        # the weights left in float are stored as the parent stores them: float16 where that is exact
        model = onnx.load(str(tmp_path / target / "speech.onnx"))
        floats = [numpy_helper.to_array(t) for t in model.graph.initializer
                  if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) >= 1024]
        assert not [w for w in floats if np.array_equal(w.astype(np.float16).astype(np.float32), w)]
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
        q = Bundle.load(tmp_path / target).manifest.speech.provenance["quantization"]
        assert q["target"] == target and q["reduce_range"] == (target == "cpu-avx2")
        assert q["validated_on"] == {"cpu": system.cpu_model(), "cpu_flags": system.cpu_flags()}
    assert QuantizeConfig("int8").resolved().target == system.int8_target()


def test_every_phase_of_quantize_says_what_it_does_and_how_long_it_took(cset: CalibrationSet, tmp_path: Path
                                                                        ) -> None:
    """A phase over many items prints progress while it runs (at most every few seconds) and its time when it ends:
    calibration feeds, ORT's calibration pass, the validation runs."""
    from edgeser_export.progress import Ticker

    lines: list[str] = []
    ticker = Ticker(lines.append, "phase", 3, every_s=0.0)
    assert list(ticker.over(["a", "b", "c"])) == ["a", "b", "c"]
    assert lines[:2] == ["phase: 1/3 (0 s)", "phase: 2/3 (0 s)"] and lines[2].startswith("phase: 3 in ")
    lines.clear()
    quiet = Ticker(lines.append, "phase", 1000, every_s=3600.0)
    for i in range(1, 1001):
        quiet(i)
    assert lines == []  # nothing between the start and the end of a quick phase
    lines.clear()
    validation = Dataset("v", tuple(Utterance(f"v{i}", cset.root / cset.items[i].audio, f"s{i % 2}", f"s{i % 2}", label,
                                              "kids are talking by the door")
                                    for i, label in enumerate(["neutral", "happy", "angry", "sad"])))
    quantize_bundle("default", tmp_path / "v", QuantizeConfig("int8", graphs=("speech",), min_cosine=0.0,
                                                             ua_budget=100.0), cset, validation, progress=lines.append)
    done = [line for line in lines if " in " in line and line.endswith(" s")]
    assert any(line.startswith("speech: calibration feeds") for line in done), lines
    assert any("calibration pass" in line for line in done), lines
    assert any(line.startswith("validation: variant: 4 in") for line in done), lines
