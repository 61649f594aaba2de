"""The voiced-frame mask: silero-vad's chunks put on the encoder's frame grid, one rule for training and prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeser.audio import load_audio
from edgeser.audio.vad import CHUNK, MIN_VOICED_S, Voicing, voicing
from edgeser.model.specs import FrameFormula

SAMPLE = "edgeser/samples/kids_talking.wav"
# Whisper's grid (the default's speech graph): 20 ms frames
WHISPER = FrameFormula(conv_kernel=(400, 3, 3), conv_stride=(160, 1, 2), sample_rate=16000,
                       conv_padding=((200, 40), (1, 1), (1, 1)))


def test_frame_mask_follows_the_voiced_chunks_with_a_little_padding() -> None:
    probs = np.zeros(100, np.float32)  # 3.2 s
    probs[40:60] = 0.9  # speech from 1.28 s to 1.92 s
    mask = Voicing(probs).frame_mask(WHISPER, 160)
    centres = WHISPER.frame_centre_s(np.arange(160))
    assert mask[(centres > 1.3) & (centres < 1.9)].all()
    assert not mask[centres < 1.1].any() and not mask[centres > 2.1].any()
    assert Voicing(probs).seconds == pytest.approx(20 * CHUNK / 16000)


def test_too_little_speech_pools_every_frame() -> None:
    probs = np.zeros(100, np.float32)
    probs[50:52] = 0.9  # 64 ms: a click, not an utterance
    assert Voicing(probs).frame_mask(WHISPER, 160).all()
    assert Voicing(np.zeros(100, np.float32)).frame_mask(WHISPER, 160).all()
    enough = np.zeros(100, np.float32)
    enough[50 : 50 + int(np.ceil(MIN_VOICED_S * 16000 / CHUNK))] = 0.9
    assert not Voicing(enough).frame_mask(WHISPER, 160).all()


def test_silence_added_around_speech_is_masked_out() -> None:
    speech = load_audio(SAMPLE)
    quiet = (1e-4 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    padded = np.concatenate([quiet, speech, quiet])
    n = int(WHISPER.num_frames(padded.size))
    mask = voicing(padded).frame_mask(WHISPER, n)
    centres = WHISPER.frame_centre_s(np.arange(n))
    assert not mask[centres < 0.8].any() and not mask[centres > padded.size / 16000 - 0.8].any()
    assert mask.sum() * WHISPER.hop_s == pytest.approx(voicing(speech).frame_mask(WHISPER, int(
        WHISPER.num_frames(speech.size))).sum() * WHISPER.hop_s, abs=0.25)


def test_the_shipped_vad_model_is_checked_and_its_state_layout_read_from_the_graph(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeser.audio.vad as vad_module
    from edgeser.errors import BackendError, BackendUnavailableError

    assert vad_module.silero_model_path() == vad_module.SILERO_MODEL
    detector = vad_module.SileroVad()
    assert detector._state.shape == (2, 1, 128)  # [layers, batch, width] from the graph's "state" input
    tampered = tmp_path / "silero_vad.onnx"
    data = bytearray(vad_module.SILERO_MODEL.read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(vad_module, "SILERO_MODEL", tampered)
    vad_module._checked_silero.cache_clear()
    try:
        with pytest.raises(BackendUnavailableError, match="sha256 differs"):
            vad_module.silero_model_path()
    finally:
        monkeypatch.undo()
        vad_module._checked_silero.cache_clear()

    class OtherModel:  # a graph that is not silero-vad 5/6
        def get_inputs(self):  # type: ignore[no-untyped-def]
            return [type("I", (), {"name": "x", "shape": [1, 512]})()]

        def get_outputs(self):  # type: ignore[no-untyped-def]
            return [object()]

    with pytest.raises(BackendError, match="not a silero-vad 5/6 model"):
        vad_module.SileroVad(session=OtherModel())


def test_a_whole_utterance_gets_what_chunk_by_chunk_calls_give() -> None:
    from edgeser.audio.vad import SileroVad

    wave = load_audio(SAMPLE)[: 40 * CHUNK]
    one, many = SileroVad(), SileroVad()
    expected = np.array([one(wave[k * CHUNK : (k + 1) * CHUNK]) for k in range(20)] +
                        [one(wave[k * CHUNK : (k + 1) * CHUNK]) for k in range(20, 40)], dtype=np.float32)
    got = np.concatenate([many.probabilities(wave[: 20 * CHUNK]), many.probabilities(wave[20 * CHUNK :])])
    np.testing.assert_array_equal(got, expected)  # the state and context carry over between calls
    assert one(wave[:CHUNK]) == many(wave[:CHUNK])
