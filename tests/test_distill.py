"""Distillation: a tiny teacher into a smaller student; losses fall, the student segments, runs resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from edgeser.errors import DatasetError  # noqa: E402
from edgeser_export.distill import DistillConfig, DistillTrain, distill  # noqa: E402
from edgeser_export.encoder import SpeechEmotionModel, compact_config, save  # noqa: E402
from tests.conftest import SAMPLE  # noqa: E402

pytestmark = pytest.mark.export
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, conv_dim=(32,) * 7,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("teacher") / "t"
    save(SpeechEmotionModel(compact_config(**TINY), num_emotions=4), folder, ["neutral", "happy", "angry", "sad"])
    return folder


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of audio without labels: the sample at three gains and speeds."""
    import soxr

    folder = tmp_path_factory.mktemp("audio")
    wave, sr = sf.read(SAMPLE, dtype="float32")
    for i, (gain, speed) in enumerate([(1.0, 1.0), (0.5, 1.1), (1.5, 0.9)]):
        sf.write(folder / f"{i}.wav", np.clip(soxr.resample(wave, sr * speed, sr) * gain, -1, 1), sr)
    return folder


def test_student_learns_from_the_teacher_on_unlabelled_audio(teacher: Path, unlabelled: Path, tmp_path: Path) -> None:
    config = DistillConfig(teacher=teacher, data=(unlabelled,), student={"num_hidden_layers": 1, "hidden_size": 16,
                                                                           "intermediate_size": 24,
                                                                           "num_attention_heads": 2},
                           train=DistillTrain(epochs=12, batch_size=3, lr=3e-3, max_seconds=3.0))
    summary = distill(config, tmp_path / "run", progress=lambda _: None)
    h = summary["history"]
    assert summary["student_params"] < summary["teacher_params"] and summary["labelled"] == 0
    for k in ("ctc_kl", "emotion_kl", "hidden_mse"):
        assert h[-1][k] < h[0][k]
    from edgeser import EmotionRecognizer
    from edgeser_export.pipeline import export_bundle
    from edgeser_export.sources import load_speech

    export_bundle(tmp_path / "b", speech=load_speech(tmp_path / "run" / "student"), exporter="torchscript")
    out = EmotionRecognizer.from_bundle(tmp_path / "b").encode(SAMPLE)
    assert out.log_probs.shape[-1] == 46 and out.hidden_states.shape[-1] == 16  # teacher's vocabulary kept

    # resuming: more epochs continue the same history
    more = DistillConfig(**{**config.__dict__, "train": DistillTrain(**{**config.train.__dict__, "epochs": 13})})
    resumed = distill(more, tmp_path / "run", progress=lambda _: None)
    assert len(resumed["history"]) == 13 and resumed["history"][:12] == h


def test_bad_configs_fail_before_work(tmp_path: Path, teacher: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"teacher": str(tmp_path / "nope"), "data": [str(tmp_path)]}))
    with pytest.raises(DatasetError, match="not a teacher folder"):
        DistillConfig.from_file(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"teacher": str(teacher), "data": [str(tmp_path / "x")]}))
    with pytest.raises(DatasetError, match="not found"):
        DistillConfig.from_file(tmp_path / "d.json")
    (tmp_path / "e.json").write_text(json.dumps({"teacher": str(teacher), "data": ["."], "train": {"epoch": 1}}))
    with pytest.raises(DatasetError, match="epoch"):
        DistillConfig.from_file(tmp_path / "e.json")


class _RunsCode:
    """Unpickling this would call os.system: what a crafted checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_without_running_it(teacher: Path, tmp_path: Path) -> None:
    from edgeser_export.checkpoints import load_checkpoint
    from edgeser_export.distill import load_teacher

    marker = tmp_path / "ran"
    crafted = tmp_path / "teacher"
    crafted.mkdir()
    for f in teacher.iterdir():
        if f.is_file():
            (crafted / f.name).write_bytes(f.read_bytes())
    torch.save({"state_dict": _RunsCode(marker), "labels": ["a"]}, crafted / "emotion_head.pt")
    with pytest.raises(DatasetError, match="refused without unpickling"):
        load_teacher(crafted)
    with pytest.raises(DatasetError, match=r"emotion_head\.pt"):
        load_checkpoint(crafted / "emotion_head.pt")
    assert not marker.exists()
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DatasetError, match="not the dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_a_run_resumes_from_its_checkpoint_with_every_state(tmp_path: Path) -> None:
    """save_epoch / resume, which distillation and the compact encoder's training share: nothing to resume gives
    ([], 0); after a save, fresh modules and optimizer get back the saved states, the history and the next epoch,
    and no temporary file is left beside the checkpoint."""
    from edgeser_export.checkpoints import resume, save_epoch

    def run() -> tuple[dict[str, torch.nn.Module], torch.optim.Optimizer]:
        modules = {"student": torch.nn.Linear(3, 2), "projection": torch.nn.Linear(2, 4)}
        params = [p for m in modules.values() for p in m.parameters()]
        return modules, torch.optim.AdamW(params, lr=1e-2)

    path = tmp_path / "checkpoint.pt"
    torch.manual_seed(0)
    modules, opt = run()
    assert resume(path, modules, opt) == ([], 0)
    loss = sum(m(torch.ones(1, m.in_features)).sum() for m in modules.values())
    loss.backward()
    opt.step()
    save_epoch(path, modules, opt, [{"epoch": 0, "loss": 1.5}], epoch=0)
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"]
    torch.manual_seed(1)
    fresh, fresh_opt = run()
    assert resume(path, fresh, fresh_opt) == ([{"epoch": 0, "loss": 1.5}], 1)
    for name, m in modules.items():
        for a, b in zip(m.state_dict().values(), fresh[name].state_dict().values(), strict=True):
            assert torch.equal(a, b)
    assert fresh_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"] == 1
