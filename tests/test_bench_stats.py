"""The benchmark statistics on fixed inputs: percentiles, interleaving, paired ratios, Pareto front, and the
UA/WA the suite reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeser.metrics import confusion_matrix, unweighted_accuracy, weighted_accuracy
from edgeser_benchmarks.stats import interleaved, paired_bootstrap_ua, paired_ratios, pareto_front, percentiles


def test_percentiles_interpolate_between_order_statistics() -> None:
    got = percentiles([4.0, 1.0, 3.0, 2.0, 5.0], (50, 90, 99))
    assert got == {"p50": 3.0, "p90": pytest.approx(4.6), "p99": pytest.approx(4.96)}
    assert percentiles([7.0]) == {"p50": 7.0, "p90": 7.0, "p99": 7.0}
    with pytest.raises(ValueError):
        percentiles([])


def test_interleaving_visits_every_variant_each_round_after_warmup() -> None:
    order = interleaved(["A", "B", "C"], repeats=2, warmup=1)
    assert order == [("A", True), ("B", True), ("C", True), ("A", False), ("B", False), ("C", False),
                     ("A", False), ("B", False), ("C", False)]
    assert interleaved(["A"], 1, warmup=0) == [("A", False)]
    with pytest.raises(ValueError):
        interleaved([], 1)


def test_paired_ratios_use_the_same_round() -> None:
    # a machine that slows down in round 3 slows both alike: the ratio stays 2
    got = paired_ratios([2.0, 2.0, 8.0, 2.0], [1.0, 1.0, 4.0, 1.0])
    assert got == {"median": 2.0, "p10": 2.0, "p90": 2.0}
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])


def test_pareto_front() -> None:
    pts = [(100.0, 60.0), (50.0, 55.0), (200.0, 70.0), (150.0, 58.0), (50.0, 50.0)]
    assert pareto_front(pts) == [1, 0, 2]


def test_ua_and_wa_on_a_hand_computed_case() -> None:
    truth = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3]
    pred = [0, 0, 0, 1, 1, 0, 2, 2, 3, 3]
    cm = confusion_matrix(truth, pred, 4)
    assert unweighted_accuracy(cm) == pytest.approx(np.mean([3 / 4, 1 / 2, 2 / 3, 1]))
    assert weighted_accuracy(cm) == pytest.approx(7 / 10)


def test_tegrastats_power_summary() -> None:
    from edgeser_benchmarks.devices.jetson import power_summary

    lines = ["11-25-2026 10:00:00 RAM 2190/7620MB (lfb 4x4MB) CPU [12%@1420,off] GR3D_FREQ 0% "
             "VDD_IN 4952mW/4952mW VDD_CPU_GPU_CV 1082mW/1082mW VDD_SOC 1484mW/1484mW",
             "11-25-2026 10:00:01 RAM 2191/7620MB VDD_IN 6952mW/5952mW VDD_CPU_GPU_CV 2082mW/1582mW "
             "VDD_SOC 1500mW/1492mW", "garbage line"]
    got = power_summary(lines)
    assert got["VDD_IN"] == {"mean_mw": 5952.0, "peak_mw": 6952.0, "samples": 2}
    assert set(got) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}


def test_compare_merges_devices_into_one_table_and_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    pytest.importorskip("matplotlib", reason="the Pareto plot needs matplotlib (pip install 'edgeser[export]')")

    from edgeser_benchmarks.suite import compare, write

    row = {"variant": "default", "precision": "fp32", "backend": "onnxruntime CPUExecutionProvider", "ua": 0.6,
           "wa": 0.61, "latency_ms": {"4s": {"p50": 100.0, "p90": 120.0, "p99": 130.0}}, "rtf": {"4s": 0.025},
           "size_mb": 8.9}
    for device, p50, flags in (("orin", 300.0, ["asimddp"]), ("desktop", 50.0, None)):
        (tmp_path / device).mkdir()
        machine = {"device_name": device, **({"cpu_flags": flags} if flags else {})}
        result = {"machine": machine, "dataset": "ravdess",
                  "rows": [{**row, "latency_ms": {"4s": {"p50": p50, "p90": p50, "p99": p50}}}]}
        (tmp_path / device / "results.json").write_text(json.dumps(result))
    merged = compare([tmp_path / "orin", tmp_path / "desktop"])
    assert [(r["device"], r["latency_ms"]["4s"]["p50"]) for r in merged["rows"]] == [("orin", 300.0),
                                                                                     ("desktop", 50.0)]
    write(merged, tmp_path / "out")
    table = (tmp_path / "out" / "table.md").read_text()
    # each row says which instruction sets its figures hold for (a file that predates the flags says so)
    assert "| orin (asimddp) | default |" in table and "| desktop (flags not recorded) | default |" in table
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 1000


def test_paired_bootstrap_ua_difference_and_interval() -> None:
    truth = [0, 0, 1, 1]
    a = [0, 0, 1, 0]  # recalls 1.0, 0.5: UA 0.75
    b = [0, 1, 1, 0]  # recalls 0.5, 0.5: UA 0.5
    got = paired_bootstrap_ua(truth, a, b, num_classes=3, rounds=2000)  # class 2 absent: not averaged in
    assert got["difference"] == pytest.approx(0.25)
    # a is right wherever b is, so no redraw can favour b
    assert 0.0 <= got["low"] <= got["difference"] <= got["high"] <= 0.5
    assert got["share_a_better"] > 0.5
    same = paired_bootstrap_ua(truth, a, a, num_classes=2, rounds=100)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "share_a_better": 0.0}


def test_paired_bootstrap_ua_separates_real_from_chance_differences() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, 400)
    good = np.where(rng.random(400) < 0.8, truth, (truth + 1) % 4)  # ~80% right
    poor = np.where(rng.random(400) < 0.5, truth, (truth + 1) % 4)  # ~50% right
    clear = paired_bootstrap_ua(truth, good, poor, 4, rounds=2000)
    assert clear["low"] > 0.15 and clear["share_a_better"] == 1.0
    other = np.where(rng.random(400) < 0.8, truth, (truth + 2) % 4)  # as good as `good`, different errors
    tie = paired_bootstrap_ua(truth, good, other, 4, rounds=2000)
    assert tie["low"] < 0 < tie["high"]
    with pytest.raises(ValueError):
        paired_bootstrap_ua([0, 1], [0], [0, 1], 2)
    with pytest.raises(ValueError):
        paired_bootstrap_ua([0, 1], [0, 1], [0, 1], 2, level=1.0)


def test_suite_compares_variants_on_the_utterances_both_scored() -> None:
    from edgeser_benchmarks.suite import markdown, ua_difference

    truth = [0, 1, 1, 3]
    row = {"truth": truth, "predictions": [0, 1, -1, 3]}  # the third utterance refused
    ref = {"truth": truth, "predictions": [0, 0, 1, 3]}
    got = ua_difference(row, ref, 4)  # scored on utterances 0, 1, 3: UA 1 against 2/3
    assert got["difference"] == pytest.approx(1 / 3, abs=1e-4)
    result = {"machine": {"device_name": "here"},
              "rows": [{"variant": "fp32", "ua": 2 / 3, "size_mb": 9.0},
                       {"variant": "int8", "ua": 1.0, "ua_vs_reference": got, "size_mb": 3.0}]}
    lines = markdown(result).splitlines()
    assert lines[0].split(" | ")[5] == "UA vs reference [95%]"
    assert lines[2].split(" | ")[5] == "-"
    assert lines[3].split(" | ")[5] == f"+33.3 [{100 * got['low']:+.1f}, {100 * got['high']:+.1f}]"


def test_time_interleaved_times_each_call_once_per_timed_round() -> None:
    from edgeser_benchmarks.stats import latency_summary, time_interleaved

    order: list[str] = []
    times = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=1)
    assert order == ["a", "b"] * 4  # one untimed round, then three timed ones, interleaved
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    summary = latency_summary({"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0, 6.0]}, "a", "ratio_to_a")
    assert summary["b"]["p50_ms"] == 4000.0 and summary["b"]["ratio_to_a"]["median"] == 2.0
    assert summary["a"]["ratio_to_a"]["median"] == 1.0


def test_bench_table_has_five_fold_rows_the_peers_encoders_and_the_baselines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from edgeser.errors import EdgeserError
    from edgeser_benchmarks.suite import markdown, read_folds

    (tmp_path / "other.json").write_text('{"variants": {}}')
    with pytest.raises(EdgeserError, match="not a five-fold result"):
        read_folds([tmp_path / "other.json"])
    one = {"variants": {"a": {"pooled_ua": 0.5}}, "truth": [0, 1], "predictions": {"a": [0, 0]}, "accuracy": "5 folds",
           "baselines": {"eGeMAPS": {"pooled_ua": 0.4}}}
    two = {**one, "variants": {"a": {"pooled_ua": 0.9}, "b": {"pooled_ua": 0.6}},
           "predictions": {"a": [1, 1], "b": [0, 1]}}
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "two.json").write_text(json.dumps(two))
    merged = read_folds([tmp_path / "one.json", tmp_path / "two.json"])
    assert {k: v["pooled_ua"] for k, v in merged["variants"].items()} == {"a": 0.5, "b": 0.6}  # the first "a" kept
    assert merged["variants"]["b"]["predictions"] == [0, 1] and merged["variants"]["a"]["truth"] == [0, 1]
    assert merged["variants"]["a"]["accuracy"] == "5 folds" and merged["baselines"]["eGeMAPS"]["pooled_ua"] == 0.4
    folds = "5 actor folds (560)"
    peer = "CTranslate2 tiny.en encode(), 30 s window (fp32)"
    result = {"machine": {"device_name": "here"}, "protocol": {"held_out": "groups not trained on"},
              "rows": [{"variant": "default", "ua": 0.78, "size_mb": 13.0, "accuracy": folds},
                       {"variant": "previous", "ua": 0.6, "size_mb": 8.9, "accuracy": "actors 17-20"}],
              "encoder_latency": {"clips": {"4s": {
                  "default": {"p50_ms": 50.0, "ratio_to_first": {"median": 1.0}},
                  "previous": {"p50_ms": 40.0, "ratio_to_first": {"median": 0.8}},
                  peer: {"p50_ms": 700.0, "ratio_to_first": {"median": 14.0}}}}},
              "baselines": [{"variant": "baseline: eGeMAPS + LR (speech)", "ua": 0.625, "wa": 0.63, "accuracy": folds}]}
    lines = markdown(result).splitlines()
    table = [line.split(" | ") for line in lines if line.startswith("| here")]
    assert len({len(cells) for cells in table}) == 1 == len({len(lines[0].split(" | "))} | {len(table[0])})
    by_name = {cells[1]: cells for cells in table}
    assert by_name["default"][-2:] == ["50 ms (1.00)", f"{folds} |"]
    assert by_name["previous"][-1] == "actors 17-20 |"
    assert by_name[peer][4] == "-" and by_name[peer][-2] == "700 ms (14.00)"
    assert by_name["baseline: eGeMAPS + LR (speech)"][4] == "62.5"
    assert by_name["baseline: eGeMAPS + LR (speech)"][-1] == f"{folds} |"


def test_tables_update_rewrites_only_the_marked_blocks(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from edgeser_benchmarks import tables

    monkeypatch.setitem(tables.TABLES, "fake", lambda: "| a |\n|---|\n| 1 |")
    doc = tmp_path / "README.md"
    doc.write_text("intro\n<!-- table: fake -->\n| old |\n<!-- end table -->\nmiddle\n<!-- table: fake -->\n"
                   "<!-- end table -->\nend\n")
    assert tables.update(doc) == 2
    assert doc.read_text() == ("intro\n<!-- table: fake -->\n| a |\n|---|\n| 1 |\n<!-- end table -->\nmiddle\n"
                               "<!-- table: fake -->\n| a |\n|---|\n| 1 |\n<!-- end table -->\nend\n")
    doc.write_text("<!-- table: nosuch -->\n<!-- end table -->\n")
    with pytest.raises(SystemExit, match="unknown table"):
        tables.update(doc)


def test_a_command_recorded_under_the_old_package_names_is_shown_as_it_runs_today() -> None:
    from edgeser_benchmarks.provenance import in_todays_layout

    old = ("python -m edgeser.benchmarks.generalisation --bundle runs/export/b --out benchmarks/results/g.json "
           "--calibration=calibration/set.json")
    assert in_todays_layout(old) == ("python -m edgeser_benchmarks.generalisation --bundle runs/export/b "
                                     "--out benchmarks/results/g.json "
                                     "--calibration=calibration/set.json")
    now = "edgeser quantize default --calibration ../shared/data/ravdess/labels.csv --out bundles/default-int8"
    assert in_todays_layout(now) == now
    assert in_todays_layout("python -m edgeser.export.multicorpus") == "python -m edgeser_export.multicorpus"


def test_align_agreement_cache_round_trips_without_pickle(tmp_path: Path) -> None:
    from edgeser.alignment.ctc.emissions import Emissions
    from edgeser.model.bundle import CtcVocab
    from edgeser_benchmarks.studies.align_agreement import load_cache, save_cache

    vocab = CtcVocab(("<b>", "a", "b"), 0, None, None, "phonemes")
    em = Emissions(np.log(np.full((5, 3), 1 / 3, np.float32)), vocab, 0.02, 0.01)
    cached = {"chosen": 1, "failures": [], "aligner": "x", "real_time_factor": 0.1,
              "items": [{"actor": 1, "em": em, "text": "kids", "ref": [("kids", 0.1, 0.4)], "right": 0.9}]}
    save_cache(cached, tmp_path / "cache")
    back = load_cache(tmp_path / "cache")
    item = back["items"][0]
    np.testing.assert_array_equal(item["em"].log_probs, em.log_probs)
    assert item["em"].vocab == vocab and item["em"].hop_s == 0.02 and item["ref"] == [("kids", 0.1, 0.4)]
    assert {p.suffix for p in (tmp_path / "cache").iterdir()} == {".json", ".npz"}


def test_baselines_without_training_speakers_are_skipped_with_the_reason() -> None:
    """`edgeser bench --dataset` on speakers who are all held out stopped with scikit-learn's "Found array with 0
    sample(s)"; the baseline row now says why it is missing."""
    from edgeser.datasets import Dataset, Utterance
    from edgeser_benchmarks.suite import baseline_rows

    ds = Dataset("d", tuple(Utterance(f"u{i}", None, "s", "s", label, None)
                            for i, label in enumerate(["neutral", "happy", "angry", "sad"])))
    rows = baseline_rows(ds, [], [0, 1, 2, 3], {}, progress=lambda _: None)
    assert len(rows) == 1 and rows[0]["variant"] == "baselines" and "no training speakers" in rows[0]["skipped"]


def test_service_load_counts_files_by_overlap_across_laps() -> None:
    from edgeser_benchmarks.service_load import file_counts

    out = {"period": 10.0, "total": 25.0, "spans": [(1.0, 3.0), (5.0, 10.0)],  # the second ends where the wave does
           "results": [(0.0, {"type": "utterance", "start_s": 1.2, "end_s": 2.9}),
                       (0.0, {"type": "utterance", "start_s": 15.1, "end_s": 16.8}),
                       (0.0, {"type": "utterance", "start_s": 11.0, "end_s": 12.0, "partial": True})]}
    # complete by 25 s: 1-3, 5-10, 11-13, 15-20, 21-23; found: 1-3 and 15-20 (a partial result does not count)
    assert file_counts(out) == (5, 2)


def test_bench_never_scores_a_bundle_on_speakers_it_was_trained_on() -> None:
    """The shipped default records its training speakers as "corpus:speaker"; a RAVDESS dataset read alone names
    them "Actor_01". Those are training speakers, so none is held out: the bundle is left unscored (with the way to
    score it), not failed (issue 25, item 6) and not scored at 100 on its own training data. A head trained on 16
    actors is scored on the other 4."""
    import types

    from edgeser.datasets import Dataset, Utterance
    from edgeser.model.bundle import DEFAULT_LABELS, Bundle
    from edgeser_benchmarks.suite import split

    actors = [f"Actor_{i:02d}" for i in range(1, 21)]
    ds = Dataset("ravdess", tuple(Utterance(id=f"{a}-{k}", path=None, speaker=a, group=a, label="sad",
                                            transcript=None) for a in actors for k in range(2)), DEFAULT_LABELS)
    shipped = Bundle.load(Path(__file__).resolve().parents[1] / "edgeser" / "models" / "default")
    train, test, how = split(ds, shipped, None)
    assert test == [] and len(train) == 40 and how.startswith("not scored") and "--folds" in how
    sixteen = types.SimpleNamespace(path=Path("b"), manifest=types.SimpleNamespace(fusion=types.SimpleNamespace(
        provenance={"train_groups": actors[:16]})))
    train, test, how = split(ds, sixteen, None)  # type: ignore[arg-type]
    assert sorted({ds.utterances[i].group for i in test}) == actors[16:] and len(train) == 32


def test_the_commit_stamp_is_dirty_for_code_changes_not_for_earlier_results(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from edgeser_benchmarks.provenance import commit

    if shutil.which("git") is None:
        pytest.skip("needs git")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "r.json").write_text("{}\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "first")
    assert commit(tmp_path).endswith("+dirty") is False and commit(tmp_path) != "unknown"
    (tmp_path / "benchmarks" / "results" / "r.json").write_text('{"a": 1}\n')  # what an earlier run wrote
    assert not commit(tmp_path).endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert commit(tmp_path).endswith("+dirty")
