"""The machine's CPU as the runtime reads it, and which INT8 scheme holds on it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgeser import system

SAPPHIRE = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 avx512f avx512_vnni "
            "amx_int8 fma\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 avx512f "
            "avx512_vnni amx_int8 fma\n")
EPYC_ROME = "model name\t: AMD EPYC 7B12\nflags\t\t: fpu avx avx2 fma\n"
ORIN = "processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd aes crc32 atomics asimddp\nCPU part\t: 0xd42\n"


def test_the_cpu_model_and_flags_are_read_on_x86_and_arm() -> None:
    assert system.cpu_model(SAPPHIRE) == "Intel(R) Xeon(R) Processor"
    assert system.cpu_flags(SAPPHIRE) == ["avx2", "avx512f", "avx512_vnni", "amx_int8"]
    assert system.cpu_model(EPYC_ROME) == "AMD EPYC 7B12" and system.cpu_flags(EPYC_ROME) == ["avx2"]
    assert system.cpu_flags(ORIN) == ["asimddp"]
    assert system.cpu_flags("") == []


def test_each_cpu_gets_the_int8_scheme_that_cannot_saturate_on_it() -> None:
    assert system.int8_target(system.cpu_flags(SAPPHIRE), "x86_64") == "cpu-vnni"
    assert system.int8_target(["avx2", "avx_vnni"], "x86_64") == "cpu-vnni"  # client Intel parts: AVX-VNNI
    assert system.int8_target(system.cpu_flags(EPYC_ROME), "x86_64") == "cpu-avx2"
    assert system.int8_target(system.cpu_flags(ORIN), "aarch64") == "arm"
    assert [system.int8_method(t) for t in (*system.INT8_TARGETS, "tensorrt")] == ["minmax", "dynamic", "minmax",
                                                                                  "minmax"]
    # the 8-bit scheme warns on a CPU without VNNI; the 7-bit one never does
    warning = system.int8_warning("cpu-vnni", ["avx2"], "x86_64")
    assert warning is not None and "--target cpu-avx2" in warning and "avx2" in warning
    assert system.int8_warning("cpu-vnni", ["avx2", "avx512_vnni"], "x86_64") is None
    assert system.int8_warning("cpu-avx2", ["avx2"], "x86_64") is None


def test_describe_names_the_cpu_flags_and_scheme() -> None:
    d = system.describe()
    assert {"cpu", "cores", "cpu_flags", "int8_target", "onnxruntime", "providers"} <= set(d)
    assert d["int8_target"] in system.INT8_TARGETS and set(d["cpu_flags"]) <= set(system.CPU_FLAGS)


def test_a_bundle_quantized_for_vnni_warns_when_loaded_on_a_cpu_without_it(
        tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """The speech graph's bundle.json says it was quantized to 8 bits for VNNI; loaded where cpu_flags finds only
    AVX2, the recogniser logs why its accuracy may not hold and what to run instead; a 7-bit variant is quiet."""
    import json
    import shutil

    from edgeser import EmotionRecognizer

    def with_record(record: dict[str, object], out: Path) -> Path:
        shutil.copytree(tiny_bundle, out)
        manifest = json.loads((out / "bundle.json").read_text())
        manifest["speech"]["provenance"]["quantization"] = record
        (out / "bundle.json").write_text(json.dumps(manifest))
        return out

    monkeypatch.setattr(system, "cpu_flags", lambda cpuinfo=None: ["avx2"])
    monkeypatch.setattr(system.platform, "machine", lambda: "x86_64")
    vnni = with_record({"precision": "int8", "target": "cpu-vnni", "reduce_range": False}, tmp_path / "vnni")
    with caplog.at_level(logging.WARNING, logger="edgeser.recognizer"):
        EmotionRecognizer.from_bundle(vnni)
    assert any("--target cpu-avx2" in r.getMessage() for r in caplog.records)
    caplog.clear()
    avx2 = with_record({"precision": "int8", "target": "cpu-avx2", "reduce_range": True}, vnni.parent / "avx2")
    with caplog.at_level(logging.WARNING, logger="edgeser.recognizer"):
        EmotionRecognizer.from_bundle(avx2)
    assert not caplog.records
