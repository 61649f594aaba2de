"""Markdown tables of the committed results, for the README and the model card (so that no figure is copied
by hand): ``python -m edgeser_benchmarks.tables [NAME]...`` prints them (names: the keys of ``TABLES``);
``python -m edgeser_benchmarks.tables --update README.md docs/*.md edgeser/models/MODEL_CARD.md`` rewrites every
block between ``<!-- table: NAME -->`` and ``<!-- end table -->`` in those files with the table of that name.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from edgeser_benchmarks.provenance import stamp_text
from edgeser_benchmarks.stats import interval
from edgeser_benchmarks.suite import flags_text

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"  # in the repository; not installed


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / name).read_text())
    return data


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def probe() -> str:
    r = _load("whisper_probe.json")
    lines = ["| encoder, layer (mean + std pooled, LR) | UA per fold (01-04 ... 17-20) | pooled UA | pooled WA | "
             "minus eGeMAPS [95%] | per-speaker normalised UA |", "|---|---|---|---|---|---|"]
    for name, enc in r["encoders"].items():
        for layer, row in enc["layers"].items():
            lines.append(f"| {name}, layer {layer} | {' / '.join(pct(u) for u in row['fold_ua'])} | "
                         f"{pct(row['pooled_ua'])} | {pct(row['pooled_wa'])} | {interval(row['minus_egemaps'])} | "
                         f"{pct(row['per_speaker_normalised']['pooled_ua'])} |")
        c = enc["layer_chosen_inside_each_fold"]
        lines.append(f"| {name}, layer chosen inside each fold ({', '.join(map(str, c['chosen']))}) | | "
                     f"**{pct(c['pooled_ua'])}** | {pct(c['pooled_wa'])} | {interval(c['minus_egemaps'])} | |")
    e = r["egemaps_lr"]
    lines.append(f"| eGeMAPS + LR | {' / '.join(pct(u) for u in e['fold_ua'])} | {pct(e['pooled_ua'])} | "
                 f"{pct(e['pooled_wa'])} | | |")
    lat = ["", "| 1 thread, p50 ms (ratio to edgeser tiny.en) | 1 s | 4 s | 10 s |", "|---|---|---|---|"]
    for engine in r["latency"]["4s"]:
        lat.append(f"| {engine} | " + " | ".join(
            f"{r['latency'][c][engine]['p50_ms']:.1f} (x{r['latency'][c][engine]['ratio_to_first']['median']:.2f})"
            for c in ("1s", "4s", "10s")) + " |")
    m = r["machine"]
    return "\n".join(lines + lat) + f"\n\n({m['cpu']}, {m['cores']} cores, {flags_text(m)}, " \
        f"ONNX Runtime {r['machine']['onnxruntime']}; `benchmarks/results/whisper_probe.json`)"


def folds() -> str:
    r = _load("ravdess_folds.json")
    lines = ["| RAVDESS 4-class, 5 actor folds (560 utterances) | UA per fold (01-04 ... 17-20) | UA mean ± std | "
             "pooled UA | pooled WA | minus eGeMAPS [95%] | minus speech frames [95%] | fused minus speech on "
             "the same levels [95%] |", "|---|---|---|---|---|---|---|---|"]
    from edgeser_export.default_model import VARIANTS

    order = [n for n in VARIANTS if n in r["summary"]] + [n for n in r["summary"] if n not in VARIANTS]
    for name in order:
        s = r["summary"][name]
        per = " / ".join(pct(f[name]["ua"]) for f in r["folds"])
        eg = r["comparisons"].get(f"{name} minus eGeMAPS")
        sp = r["comparisons"].get(f"{name} minus speech frames")
        same = next((c for k, c in r["comparisons"].items() if k.startswith(f"{name} minus speech: ")), None)
        if name == "speech: frames, per-speaker normalised":
            eg = r["comparisons"].get("per-speaker: speech frames minus eGeMAPS")
        if name == "fusion: frames, early + late with text":
            same = sp  # its speech alone is speech frames
        lines.append(f"| {name} | {per} | {pct(s['ua_mean'])} ± {pct(s['ua_std'])} | {pct(s['pooled_ua'])} | "
                     f"{pct(s['pooled_wa'])} | {interval(eg)} | {interval(sp)} | {interval(same)} |")
    return "\n".join(lines) + "\n\n(per-speaker rows: each actor z-scored with its own statistics from the scored " \
        "files themselves; `benchmarks/results/ravdess_folds.json`)"


def enrolment() -> str:
    r = _load("enrolment.json")
    lines = ["| enrolment audio per test speaker (unscored recordings) | UA per fold | pooled UA | pooled WA | "
             "minus the speaker-independent head [95%] |", "|---|---|---|---|---|"]
    for key, s in r["summary"].items():
        per = " / ".join(pct(f[key]["ua"]) for f in r["folds"])
        label = f"{s['enrolment_s']:.0f} s" if isinstance(s["enrolment_s"], float) else s["enrolment_s"]
        lines.append(f"| {label} | {per} | {pct(s['pooled_ua'])} | {pct(s['pooled_wa'])} | "
                     f"{interval(s['minus_speaker_independent'])} |")
    ref = r["reference"]
    lines.append(f"| none (the speaker-independent head, `{ref['row']}`) | | {pct(ref['pooled_ua'])} | | |")
    return "\n".join(lines) + "\n\n(`benchmarks/results/enrolment.json`)"


def fast_path() -> str:
    r = _load("fast_path.json")
    lines = ["| bundle, call (1 thread) | 1 s | 4 s | 10 s |", "|---|---|---|---|"]
    for name, rows in r["bundles"].items():
        for call in rows["1s"]:
            lines.append(f"| {name}: `{call}` | " + " | ".join(
                f"{rows[c][call]['p50_ms']:.1f} ms (x{rows[c][call]['ratio_to_encode']['median']:.2f})"
                for c in ("1s", "4s", "10s")) + " |")
    m = r["machine"]
    return "\n".join(lines) + f"\n\n(p50, and the median round-by-round ratio to `encode`; {m['cpu']}, " \
        f"{m['cores']} cores, {flags_text(m)}; `benchmarks/results/fast_path.json`)"


def _times(latency: dict[str, Any], name: str) -> str:
    """``p50 (xratio)`` at 1 / 4 / 10 s of one encoder in a ``latency_1_thread`` record."""
    return " / ".join(f"{latency[c][name]['p50_ms']:.1f} ms (x{latency[c][name]['ratio_to_fp32']['median']:.2f})"
                      for c in ("1s", "4s", "10s"))


def _variants(file: str, title: str, reference: str, first: str = "") -> str:
    """A table of encoder variants (``precision_folds`` / ``student_folds`` result): accuracy, the difference to
    the first row, and the 1-thread latency; ``first`` is appended to the first row's name."""
    r = _load(file)
    lines = [f"| {title} | speech.onnx | pooled UA | pooled WA | minus {reference} [95%] | "
             f"1 s / 4 s / 10 s, 1 thread (ratio to {reference}) |", "|---|---|---|---|---|---|"]
    for i, (name, v) in enumerate(r["variants"].items()):
        notes = f", {len(v['kept_float'])} nodes kept in float" if v.get("kept_float") else ""
        if v.get("student"):
            notes += f", {v['head_from']}'s head" if v.get("head_from") else ", its own head"
        unseen = (v.get("guard") or {}).get("unseen_speakers")
        if unseen:  # what `edgeser quantize`'s guard measured on the validation speakers' folds
            notes += (f" (guard on unseen speakers: {pct(unseen['parent_ua'])} → {pct(unseen['variant_ua'])}, "
                      f"budget {v['guard']['ua_budget_points']:g})")
        size = f"{v['speech_mb']} MB" if "speech_mb" in v else ""
        lines.append(f"| {name}{first if i == 0 else notes} | {size} | {pct(v['pooled_ua'])} | "
                     f"{pct(v['pooled_wa'])} | {'-' if i == 0 else interval(v['minus_fp32'])} | "
                     f"{_times(r['latency_1_thread'], name)} |")
    for name, b in r.get("baselines", {}).items():
        lines.append(f"| baseline: {name} | | {pct(b['pooled_ua'])} | {pct(b['pooled_wa'])} | "
                     f"{interval(b['minus_fp32'])} | |")
    m = r["machine"]
    return "\n".join(lines) + f"\n\n({r['accuracy']}; {m['cpu']}, {m['cores']} cores, {flags_text(m)}; " \
        f"`benchmarks/results/{file}`)"


def precision() -> str:
    return _variants("precision_folds.json", "encoder of the default (head trained on FP32 frames)", "FP32")


def student() -> str:
    return _variants("student_folds.json", "encoder (heads trained on the FP32 frames of the teacher or student)",
                     "the teacher",
                     first=" (the teacher: tiny.en to block 2)")


def bench() -> str:
    """The README's results table: the columns a user choosing a variant reads, from ``edgeser bench``'s run."""
    r = _load("bench-default/results.json")
    enc = r.get("encoder_latency", {}).get("clips", {}).get("4s", {})

    def encoder(name: str) -> str:
        return f"{enc[name]['p50_ms']:.0f} ms (x{enc[name]['ratio_to_first']['median']:.2f})" if name in enc else "-"

    lines = ["| variant | UA | WA | UA scored on | predict p50, 4 s | encoder alone, 4 s (ratio) | peak RSS | size |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lat = row.get("latency_ms", {}).get("4s", {})
        lines.append(f"| {row['variant']} | {pct(row['ua']) if 'ua' in row else '-'} | "
                     f"{pct(row['wa']) if 'wa' in row else '-'} | {row.get('accuracy', '-')} | "
                     f"{lat['p50']:.0f} ms | {encoder(row['variant'])} | {row.get('peak_rss_mb', 0):.0f} MB | "
                     f"{row['size_mb']:.1f} MB |" if lat else f"| {row['variant']} | - | - | - | - | - | - | - |")
    names = {row["variant"] for row in r["rows"]}
    for name in enc:
        if name not in names:
            lines.append(f"| {name} | - | - | - | - | {encoder(name)} | - | - |")
    for b in r.get("baselines", []):
        if "ua" in b:
            lines.append(f"| {b['variant']} | {pct(b['ua'])} | {pct(b['wa'])} | {b.get('accuracy', '-')} | "
                         "- | - | - | - |")
    m = r["machine"]
    threads = r["settings"]["threads"] or "all"
    return "\n".join(lines) + f"\n\n({m['cpu']}, {m['cores']} cores, {flags_text(m)}, {threads} thread(s), " \
        f"ONNX Runtime {m['onnxruntime']}, measured {m['measured']}; " \
        "`benchmarks/results/bench-default/`, whose `table.md` has every column and `pareto.png` the plot)"


def service_load() -> str:
    r = _load("service_load.json")
    lines = ["| clients at real time | minutes | files sent | answered | dropped (counted) | lost | "
             "audio dropped before the detector | closed early | end of speech → result, client p50 / p95 ms | "
             "server p50 / p95 ms | server RSS after |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(d: dict[str, float] | None) -> str:
        return "n/a" if d is None else f"{d['p50']:.0f} / {d['p95']:.0f}"

    for run in r["runs"]:
        lines.append(f"| {run['clients']} | {run['minutes']:g} | {run['files_sent']} | {run['files_answered']} | "
                     f"{run['dropped']} | {run['lost']} | {run['audio_dropped_s']:.0f} s | {run['closed_early']} | "
                     f"{ms(run['client_latency_ms'])} | {ms(run['server_latency_ms'])} | "
                     f"{run['server_memory_after']['rss_mb']:.0f} MB |")
    return "\n".join(lines) + f"\n\n(server peak RSS {r['server_peak_rss_mb']:.0f} MB, idle " \
        f"{r['server_idle_memory']['rss_mb']:.0f} MB; exit status on SIGTERM {r['server_exit_on_sigterm']}; " \
        "clients in another process on the same machine. These figures hold for this CPU only: the encoder's speed, " \
        f"hence how many clients one machine serves, changes with the CPU) {_where(r, 'service_load.json')}"


def service_soak() -> str:
    """The soak: one long run of ``edgeser_benchmarks.service_load``, with the server's memory over time."""
    r = _load("service_soak.json")
    lines = ["| clients at real time | minutes | files sent | answered | dropped (counted) | lost | closed early | "
             "end of speech → result, client p50 / p95 ms | server RSS: first sample, last, growth (last quarter "
             "over first) |", "|---|---|---|---|---|---|---|---|---|"]
    for run in r["runs"]:
        timeline = run["server_rss_mb_timeline"]
        lat = run["client_latency_ms"]
        shown = "n/a" if lat is None else f"{lat['p50']:.0f} / {lat['p95']:.0f}"
        lines.append(f"| {run['clients']} | {run['minutes']:g} | {run['files_sent']} | {run['files_answered']} | "
                     f"{run['dropped']} | {run['lost']} | {run['closed_early']} | "
                     f"{shown} | "
                     f"{timeline[0][1]:.0f} MB, {timeline[-1][1]:.0f} MB, {run.get('rss_growth_mb', 0):+.1f} MB |")
    return "\n".join(lines) + f"\n\n(RSS sampled every {r.get('sample_s', 30):g} s; exit status on SIGTERM " \
        f"{r['server_exit_on_sigterm']}) {_where(r, 'service_soak.json')}"


def _where(r: dict[str, Any], name: str) -> str:
    """:func:`~edgeser_benchmarks.provenance.stamp_text` of a result file, or for one written before stamps its
    machine block (no CPU flags)."""
    if "provenance" in r:
        return stamp_text(r, name)
    m = r["machine"]
    return (f"({m['cpu']}, {m['cores']} cores, {flags_text(m)}, measured {m['measured']}; "
            f"`benchmarks/results/{name}`)")


def batch_scale() -> str:
    """Corpus jobs and feature extraction, in this process and on local Ray (``edgeser_benchmarks.batch_scale``)."""
    r = _load("batch_scale.json")
    f = r.get("features")
    lines = ["| way | edgeser batch: files/s | audio s per s | vs this process | records equal | "
             "evaluate's features: files/s | vs this process | features equal |", "|---|---|---|---|---|---|---|---|"]
    for way, w in r["ways"].items():
        fw = f["ways"][way] if f else None
        feats = (f"{fw['files_per_s']:.1f} | {fw['speed_vs_this_process']:.2f} | "
                 f"{'yes' if fw['features_equal_this_process'] else '**no**'}") if fw else "n/a | n/a | n/a"
        lines.append(f"| {way} | {w['files_per_s']:.1f} | {w['audio_s_per_s']:.0f} | "
                     f"{w['speed_vs_this_process']:.2f} | {'yes' if w['records_equal_this_process'] else '**no**'} | "
                     f"{feats} |")
    m, paper = r["machine"], r["on_paper"]
    nodes = ", ".join(f"{n}: {v:,.0f}" for n, v in paper["nodes"].items())
    return "\n".join(lines) + f"\n\n({r['files']} RAVDESS files, {r['audio_s']:,.0f} s of audio, for the batch " \
        f"job; {f['files'] if f else 0} four-class utterances, frame features, for evaluate's; medians of " \
        f"{r['rounds']} rounds, the ways alternating; Ray started once before, in {r['ray_start_s']:g} s. On paper, " \
        f"N nodes like this one: {nodes} files/s, the driver's ceiling {paper['driver_ceiling_files_per_s']:,.0f} " \
        f"files/s ({r['driver_write_ms_per_file']:g} ms per file to write the shards). {m['cpu']}, {m['cores']} " \
        f"cores, {flags_text(m)}, measured {m['measured']}; `benchmarks/results/batch_scale.json`)"


def tensorrt_ready(file: str = "tensorrt_ready.json") -> str:
    """``quantize --target tensorrt`` beside the CPU targets on the default model
    (edgeser_benchmarks/tensorrt_ready.py); a target the guard refused is a row saying so, with the guard's own line."""
    r = _load(file)
    lat = r["speech_latency_4s_1_thread"]
    lines = ["| target | graph | Q / DQ nodes | zero points (type: count) | not 0 | integer ops | TensorRT parser "
             "problems | kept in float by the guard | MB (weights by type) | speech graph on ORT CPU, vs FP32 |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def weights(x: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in x["weight_megabytes_by_type"].items() if v >= 0.05)

    for target, t in r["targets"].items():
        if t.get("exit_status", 0) != 0:
            lines_out = t.get("last_lines") or []
            said = next((x for x in lines_out if x.startswith("validation, unseen speakers")), "see the result file")
            lines.append(f"| {target} | speech | refused by the guard (exit status {t['exit_status']}, "
                         f"{t['seconds']:.0f} s): {said} | | | | | | | |")
            continue
        for g, x in t.get("graphs", {}).items():
            if not x["converted"]:
                continue
            zps = ", ".join(f"{k}: {v}" for k, v in x["zero_points_by_type"].items()) or "none"
            ops = ", ".join(f"{k} {v}" for k, v in x["integer_ops"].items()) or "none"
            speed = f"{lat[target]['p50_ms']:.1f} ms, {lat[target]['vs_fp32']:.2f}x" if g == "speech" else ""
            lines.append(f"| {target} | {g} | {x['QuantizeLinear']} / {x['DequantizeLinear']} | {zps} | "
                         f"{x['zero_points_not_0']} | {ops} | {x['tensorrt_parser_problems']} | "
                         f"{x['kept_float']} | {x['megabytes']:.1f} ({weights(x)}) | {speed} |")
    m = r["machine"]
    guards = "; ".join(f"{t}: unseen-speaker UA {100 * g['parent_ua']:.1f} → {100 * g['variant_ua']:.1f}"
                       + (f", {100 * g['label_agreement']:.1f}% of the labels kept" if "label_agreement" in g else "")
                       for t, c in r["targets"].items() if (g := (c.get("guard") or {}).get("unseen_speakers")))
    p = r["parent_speech_graph"]
    return "\n".join(lines) + f"\n\n(the parent's speech graph: {p['megabytes']:.1f} MB ({weights(p)}); " \
        f"FP32 speech graph {lat['fp32']['p50_ms']:.1f} ms on 4 s of audio, 1 thread, " \
        f"medians of {r['rounds']} interleaved rounds; the guard as by default ({guards}); {m['cpu']}, " \
        f"{m['cores']} cores, {flags_text(m)}, measured {m['measured']}; `benchmarks/results/{file}`)"


def fuzz() -> str:
    """What every case of the fuzz suites ended as (``edgeser_benchmarks.fuzz_outcomes``)."""
    r = _load("fuzz_outcomes.json")
    lines = ["| suite | cases | outcomes | passed |", "|---|---|---|---|"]
    for name, suite in r["suites"].items():
        shown = ", ".join(f"{k} {v}" for k, v in suite["outcomes"].items())
        lines.append(f"| {name} | {suite['cases']} | {shown} | {'yes' if suite['passed'] else '**no**'} |")
    m = r["machine"]
    return "\n".join(lines) + f"\n\n({r['examples_per_suite']} cases asked per suite; {r['summary']}; {m['cpu']}, " \
        f"measured {m['measured']}; `benchmarks/results/fuzz_outcomes.json`)"


TABLES = {"fuzz": fuzz, "probe": probe, "folds": folds, "enrolment": enrolment, "fast_path": fast_path,
          "precision": precision, "student": student, "bench": bench, "service_load": service_load,
          "service_soak": service_soak, "batch_scale": batch_scale,
          "tensorrt_ready": tensorrt_ready}


CORPUS_NAMES = {"ravdess": "RAVDESS (English, acted)", "emodb": "EmoDB (German, acted)",
                "turev": "TurEV (Turkish words, no neutral)"}


def generalisation_loco() -> str:
    r = _load("generalisation.json")
    site = r["site_profile"]
    lines = ["| left-out corpus (never trained on) | UA | WA | eGeMAPS + LR, same training: UA | minus eGeMAPS [95%] | "
             "every frame, RAVDESS only (an earlier recipe), same encoder: UA | minus it [95%] | "
             "ECE raw → temperature from the other corpora | UA with a site profile (its "
             "unlabelled audio) |", "|---|---|---|---|---|---|---|---|---|"]
    for c, row in r["loco"].items():
        prev = row.get("previous")
        cal = r["calibration"]["per_corpus"][c]
        lines.append(f"| {CORPUS_NAMES[c]} | **{pct(row['chosen']['ua'])}** | {pct(row['chosen']['wa'])} | "
                     f"{pct(row['egemaps']['ua'])} | {interval(row['vs_egemaps'])} | "
                     f"{pct(prev['ua']) if prev else '- (trained on it)'} | {interval(row.get('vs_previous'))} | "
                     f"{cal['ece_raw']:.2f} → {cal['ece_calibrated']:.2f} | {pct(site[c]['all'])} "
                     f"({site[c]['all_minutes']:.0f} min) |")
    mean = sum(row["chosen"]["ua"] for row in r["loco"].values()) / len(r["loco"])
    lines.append(f"| mean | **{pct(mean)}** | | {pct(sum(x['egemaps']['ua'] for x in r['loco'].values()) / 3)} | "
                 f"| | | | {pct(site['mean_all'])} |")
    return "\n".join(lines) + f"\n\n{r['chosen']}. {stamp_text(r, 'generalisation.json')}"


def generalisation_selection() -> str:
    r = _load("generalisation.json")
    lines = ["| recipe (leave-one-corpus-out) | RAVDESS UA | EmoDB UA | TurEV UA | mean | held-out RAVDESS under the "
             "robot's conditions | score |", "|---|---|---|---|---|---|---|"]
    for name, row in sorted(r["selection"].items(), key=lambda kv: -kv[1].get("score", kv[1]["mean_ua"] / 2)):
        cells = [pct(row["loco"][c]["ua"]) if c in row["loco"] else "-" for c in ("ravdess", "emodb", "turev")]
        mean = pct(row["mean_ua"]) + ("" if row["all_corpora_scored"] else " (2 corpora)")
        robot = pct(row["ravdess_conditions_mean_ua"]) if "ravdess_conditions_mean_ua" in row else "-"
        score = pct(row["score"]) if "score" in row else "-"
        mark = "**" if name == r["chosen"] else ""
        lines.append(f"| {mark}{name}{mark} | {' | '.join(cells)} | {mean} | {robot} | {score} |")
    return "\n".join(lines) + ("\n\n(the robot's conditions: trimmed, padded, babble and pink noise at 20/10/5/0 dB, "
                               "rooms of RT60 0.3/0.6/1.0 s; score: the mean of the two columns before it) "
                               f"{stamp_text(r, 'generalisation.json')}")


def generalisation_folds() -> str:
    r = _load("generalisation.json")
    lines = ["| speakers held out | this model: UA (per fold) | WA | every frame, RAVDESS only, same encoder: UA | "
             "minus it [95%] | "
             "eGeMAPS + LR: UA | minus eGeMAPS [95%] |", "|---|---|---|---|---|---|---|"]
    for c, row in r["speaker_folds"].items():
        what = "RAVDESS, 5 actor folds" if c == "ravdess" else f"EmoDB, leave one speaker out ({row['folds']})"
        per_fold = " / ".join(pct(u) for u in row["chosen"]["fold_ua"])
        lines.append(f"| {what} | **{pct(row['chosen']['ua'])}** ({per_fold}) "
                     f"| {pct(row['chosen']['wa'])} | {pct(row['previous']['ua'])} | {interval(row['vs_previous'])} | "
                     f"{pct(row['egemaps']['ua'])} | {interval(row['vs_egemaps'])} |")
    return "\n".join(lines) + "\n\n(the other corpora are in every fold's training; the earlier recipe trains on " \
        f"RAVDESS only) {stamp_text(r, 'generalisation.json')}"


def generalisation_robustness() -> str:
    r = _load("generalisation.json")
    rob = r["robustness"]
    order = ["whole files", "trimmed", "padded", "stream path"] + [k for k in rob if k.startswith("babble")] + \
        [k for k in rob if k.startswith("pink")] + [k for k in rob if k.startswith("reverb")]
    lines = ["| RAVDESS, 5 actor folds | this model: UA | same label as the whole file | every frame, RAVDESS only, "
             "same encoder: UA | same label |", "|---|---|---|---|---|"]
    for k in order:
        a, b = rob[k]["chosen"], rob[k]["previous"]
        lines.append(f"| {k} | {pct(a['ua'])} | {pct(a['same_label'])}% | {pct(b['ua'])} | {pct(b['same_label'])}% |")
    n = r["narration"]
    narr = ["", "| read narration (LibriSpeech, " + str(n["utterances"]) + " talkers) | " +
            " | ".join(n["chosen"]) + " |", "|---|" + "---|" * len(n["chosen"])]
    for who in ("chosen", "previous"):
        narr.append(f"| {'this model' if who == 'chosen' else 'every frame, RAVDESS only, same encoder'} | " +
                    " | ".join(f"{pct(v)}%" for v in n[who].values()) + " |")
    site = r["site_profile"].get("narration")
    if site is not None:
        narr.append(f"| this model, site profile ({site['site_profile_minutes']:.0f} min of other LibriSpeech "
                    "talkers) | " + " | ".join(f"{pct(v)}%" for v in site["shares"].values()) + " |")
    cov = ["", "| coverage (most confident share, all three corpora left out in turn) | UA | WA | "
           "min_confidence that keeps it |", "|---|---|---|---|"]
    for c in r["calibration"]["coverage"]:
        cov.append(f"| {pct(c['coverage'])}% | {pct(c['ua'])} | {pct(c['wa'])} | {c['min_confidence']:.2f} |")
    return "\n".join(lines + narr + cov) + f"\n\n{stamp_text(r, 'generalisation.json')}"


def generalisation_site() -> str:
    r = _load("generalisation.json")
    s = r["site_profile"]
    lines = ["| left-out corpus | no profile | site profile: 1 min | 5 min | 20 min | all its unscored audio |",
             "|---|---|---|---|---|---|"]
    for c in ("ravdess", "emodb", "turev"):
        row = s[c]
        cells = [f"{pct(row[k]['mean'])} ({pct(row[k]['min'])}-{pct(row[k]['max'])})" if k in row else "-"
                 for k in ("1 min", "5 min", "20 min")]
        lines.append(f"| {CORPUS_NAMES[c]} | {pct(row['none'])} | {' | '.join(cells)} | {pct(row['all'])} "
                     f"({row['all_minutes']:.0f} min) |")
    return "\n".join(lines) + "\n\n(mean of 5 random draws of that much audio, min-max in brackets) " \
        f"{stamp_text(r, 'generalisation.json')}"


TABLES.update({"generalisation_loco": generalisation_loco, "generalisation_selection": generalisation_selection,
               "generalisation_folds": generalisation_folds, "generalisation_robustness": generalisation_robustness,
               "generalisation_site": generalisation_site})

MARKER = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- end table -->)", re.S)


def encoder_choice() -> str:
    """Encoder, layer and head by leave-one-corpus-out UA, with the speech graph's latency
    (``edgeser_benchmarks.encoder_choice``)."""
    r = _load("encoder_choice.json")
    lat = r["latency"]
    lines = ["| encoder | layer | head | RAVDESS UA | EmoDB UA | TurEV UA | LOCO mean | RAVDESS 5 folds | same, "
             "babble 10 dB | speech graph, 4 s, 1 thread |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in sorted(r["rows"].items(), key=lambda kv: -kv[1]["loco_mean_ua"]):
        mark = "**" if name == r["chosen"] else ""
        t = lat.get(row["encoder"], {})
        layer = "all (concatenated)" if row["layer"] is None else str(row["layer"])
        lines.append(f"| {row['encoder']} | {layer} | {row['head']} | "
                     + " | ".join(pct(row["loco"][c]["ua"]) for c in ("ravdess", "emodb", "turev"))
                     + f" | {mark}{pct(row['loco_mean_ua'])}{mark} | {pct(row['ravdess_folds_ua'])} | "
                       f"{pct(row['ravdess_babble10_ua'])} | {t.get('p50_ms', '-')} ms (every layer) |")
    timed = ", ".join(f"{n} {t['p50_ms']} ms ({t['ratio_to_reference']['median']:.2f}x)" for n, t in lat.items()
                      if isinstance(t, dict))
    return "\n".join(lines) + (f"\n\nSpeech graphs on a {lat['clip_s']:g} s clip, 1 thread, interleaved: {timed}. "
                               f"Rule: {r['rule']}; chosen: {r['chosen']}. {stamp_text(r, 'encoder_choice.json')}")


TABLES["encoder_choice"] = encoder_choice


def encoder_layers() -> str:
    """The shipped MLP head on several blocks' statistics at once (``encoder_choice --mlp``)."""
    r = _load("encoder_layers.json")
    corpora = ("ravdess", "emodb", "turev")
    lines = ["| blocks read (statistics concatenated) | LOCO UA: RAVDESS / EmoDB / TurEV | LOCO mean | "
             "RAVDESS 5 folds | babble 10 dB | score | LOCO minus the first row [95%]: RAVDESS / EmoDB / TurEV |",
             "|---|---|---|---|---|---|---|"]
    for name, row in r["rows"].items():
        mark = "**" if name == r["chosen"] else ""
        minus = row.get("minus_reference")
        diff = " / ".join(f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
                          for d in (minus[c] for c in corpora)) if minus else "-"
        loco = " / ".join(pct(row["loco"][c]["ua"]) for c in corpora)
        lines.append(f"| {row['layer']} | {loco} | {pct(row['loco_mean_ua'])} | {pct(row['ravdess_folds_ua'])} | "
                     f"{pct(row['ravdess_babble10_ua'])} | {mark}{pct(row['score'])}{mark} | {diff} |")
    return "\n".join(lines) + (f"\n\nRecipe: {r['recipe']}; {r['reading']}. Rule: {r['rule']}; chosen: "
                               f"{r['chosen']}. {stamp_text(r, 'encoder_layers.json')}")


TABLES["encoder_layers"] = encoder_layers


def int8_schemes(file: str = "int8_schemes.json", fp32: str = "- (the shipped model)") -> str:
    """INT8 schemes of the default on this CPU (or, from ``students.json``, distilled students beside it): accuracy
    on unseen speakers and corpora, speed, quantize time."""
    r = _load(file)
    acc, lat = r["accuracy"], r["latency_1_thread"]
    corpora = ("ravdess", "emodb", "turev")
    lines = ["| variant | RAVDESS 5 actor folds: UA (minus FP32 [95%]; labels FP32 gave kept) | "
             "leave-one-corpus-out UA: RAVDESS / EmoDB / TurEV | LOCO mean (minus FP32) | "
             "speech graph 1 / 4 / 10 s, 1 thread (ratio to FP32) | the documented quantize command |",
             "|---|---|---|---|---|---|"]
    fp32_loco = sum(acc[f"loco_{c}"]["fp32"]["ua"] for c in corpora) / len(corpora)
    for name, v in r["variants"].items():
        folds = acc["ravdess_folds"][name]
        loco = [acc[f"loco_{c}"][name]["ua"] for c in corpora]
        mean = sum(loco) / len(loco)
        diff = "" if name == "fp32" else f" ({100 * (mean - fp32_loco):+.1f})"
        speed = " / ".join(f"{lat[c][name]['p50_ms']:.1f} ms" for c in ("1s", "4s", "10s"))
        ratio = " / ".join(f"{lat[c][name]['ratio_to_fp32']['median']:.2f}" for c in ("1s", "4s", "10s"))
        if v.get("per_part"):
            made = ("- (a student per fold and per left-out corpus, each distilled without the audio it scores; "
                    "its own head, trained on its own features)")
        elif v.get("student"):
            made = "- (a student: its own head, trained on its own features)"
        elif "wall_s" not in v:
            made = fp32
        else:
            floats = [m.group(1) for line in v.get("log_tail", [])
                      if (m := re.search(r"(\d+) nodes kept in float", line))]
            lifted = v["guard_passed"] and "--min-label-agreement 0 " in v.get("command", "") + " "
            made = f"{v['wall_s']:.0f} s" + (f", {floats[-1]} nodes kept in float" if floats else "") + (
                ", the guard's limits lifted (--ua-budget 100 --min-label-agreement 0)" if lifted else "") + (
                "" if v["guard_passed"] else ", **refused by its guard** (measured forced through, --ua-budget 100)")
        kept = f"; {100 * folds['label_agreement']:.1f}% of labels kept" if "label_agreement" in folds else ""
        versus = "" if name == "fp32" else f" ({interval(folds['minus_fp32'])}{kept})"
        lines.append(f"| {name} | {pct(folds['ua'])}{versus} | {' / '.join(pct(u) for u in loco)} | "
                     f"{pct(mean)}{diff} | {speed} ({ratio}) | {made} |")
    return "\n".join(lines) + f"\n\n{stamp_text(r, file)}"


def generalisation_encoders() -> str:
    """The whole generalisation protocol run on each candidate encoder (``generalisation.py --bundle``): what each
    chose, and how that choice generalises."""
    runs = {"tiny.en block 2 (the previous default)": _load("generalisation-tiny.json"),
            "base block 3 (shipped)": _load("generalisation.json")}
    lines = ["| encoder | recipe its protocol chose | selection score | LOCO UA: RAVDESS / EmoDB / TurEV | LOCO mean | "
             "held-out RAVDESS, robot's conditions | RAVDESS 5 folds: whole / stream path / babble 10 dB / reverb "
             "0.6 s | EmoDB LOSO | narration: neutral / happy / angry / sad |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        chosen = r["selection"][r["chosen"]]
        rob = r["robustness"]
        narr = r["narration"]["chosen"]
        lines.append(
            f"| {name} | {r['chosen']} | {pct(chosen['score'])} | "
            + " / ".join(pct(r["loco"][c]["chosen"]["ua"]) for c in ("ravdess", "emodb", "turev"))
            + f" | **{pct(chosen['mean_ua'])}** | {pct(chosen['ravdess_conditions_mean_ua'])} | "
            + " / ".join(pct(rob[k]["chosen"]["ua"]) for k in ("whole files", "stream path", "babble 10 dB",
                                                                 "reverb 0.6 s"))
            + f" | {pct(r['speaker_folds']['emodb']['chosen']['ua'])} | "
            + " / ".join(f"{100 * narr[k]:.0f}%" for k in ("neutral", "happy", "angry", "sad")) + " |")
    tiny, base = runs.values()
    return "\n".join(lines) + (f"\n\n{stamp_text(tiny, 'generalisation-tiny.json')}; "
                               f"{stamp_text(base, 'generalisation.json')}")


def head_choice(file: str = "head_choice.json", what: str = "head") -> str:
    """The default's recipe, variants side by side on the same features (``head_choice.py``: the head;
    ``augmentation_choice.py``: the augmented copies)."""
    r = _load(file)
    confirmation = r.get("confirmation")  # a second draw, decided by the rule written for it
    shipped = r["chosen"] if confirmation is None else "6 copies" if confirmation["six_replaces_two"] else "2 copies"
    lines = [f"| {what} | LOCO UA: RAVDESS / EmoDB / TurEV | LOCO mean | RAVDESS 5 folds | babble 10 dB | trimmed: "
             "same label as whole | ECE raw, LOCO: RAVDESS / EmoDB / TurEV | score |",
             "|---|---|---|---|---|---|---|---|"]
    for name, v in r["variants"].items():
        mark = "**" if name == shipped else ""
        corpora = ("ravdess", "emodb", "turev")
        lines.append(f"| {mark}{name}{mark} | " + " / ".join(pct(v["loco_ua"][c]) for c in corpora)
                     + f" | {pct(v['loco_mean_ua'])} | {pct(v['ravdess_folds_ua'])} | "
                     f"{pct(v['ravdess_babble10_ua'])} | {100 * v['ravdess_trimmed_same_label']:.1f}% | "
                     + " / ".join(f"{v['ece'][c]['raw']:.2f}" for c in corpora)
                     + f" | {mark}{pct(v['score'])}{mark} |")
    if confirmation is None:
        return "\n".join(lines) + f"\n\nRule: {r['rule']}; chosen: {r['chosen']}. {stamp_text(r, file)}"
    held = "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in confirmation["conditions"].items())
    return "\n".join(lines) + (
        f"\n\nDraw {r['seed']} of the augmented copies. Rule written for this draw (6 copies replace 2 only if all "
        f"hold): {held}; so {shipped} {'replace' if confirmation['six_replaces_two'] else 'stay'}. The first run's "
        f"rule applied to this draw alone would choose {r['chosen']}. {stamp_text(r, file)}")


def choice_with_intervals(file: str, what: str) -> str:
    """Variants side by side (``finetune_choice.py``: block 3 frozen or fine-tuned; ``pooling_choice.py``: plain or
    attentive statistics): the head choice's rows, and each variant's paired-bootstrap differences from the
    reference row (the frozen block; the one-seed statistics head)."""
    r = _load(file)
    reference = r.get("reference", "frozen")
    diffs = []
    for name, v in r["variants"].items():
        versus = v.get("minus", v.get("minus_frozen"))
        if versus:
            diffs.append(f"{name} minus {reference} [95%]: " + "; ".join(
                f"{k.replace('folds ravdess', 'folds clean')} {interval(d)}" for k, d in versus.items()) + ".")
    table, _, rest = head_choice(file, what).partition("\n\nRule: ")
    return f"{table}\n\n{' '.join(diffs)}\n\nRule: {rest}"


TABLES["generalisation_encoders"] = generalisation_encoders
TABLES["finetune_choice"] = lambda: choice_with_intervals("finetune_choice.json",
                                                         "block 3 (the shipped recipe and head)")
TABLES["pooling_choice"] = lambda: choice_with_intervals("pooling_choice.json", "pooling of block 3's voiced frames")
TABLES["head_choice"] = head_choice
TABLES["tensorrt_ready_intel"] = lambda: tensorrt_ready("tensorrt_ready-intel.json")
TABLES["augmentation_choice"] = lambda: head_choice("augmentation_choice.json", "augmented copies of each utterance")
TABLES["stack_choice"] = lambda: head_choice("stack_choice.json", "blocks read (the shipped recipe)")
TABLES["augmentation_choice_seed1"] = lambda: head_choice("augmentation_choice-seed1.json",
                                                          "augmented copies of each utterance (second draw)")
TABLES["int8_schemes"] = int8_schemes
TABLES["int8_schemes_intel"] = lambda: int8_schemes("int8_schemes-intel.json")
TABLES["int8_schemes_now"] = lambda: int8_schemes("int8_schemes-now.json")
TABLES["int8_methods"] = lambda: int8_schemes("int8_methods.json")
TABLES["int8_dynamic"] = lambda: int8_schemes("int8_dynamic.json")
TABLES["students"] = lambda: int8_schemes("students.json", "- (their teacher: tiny.en to block 2, the default when "
                                                             "they were measured)")
TABLES["students_base"] = lambda: int8_schemes("students-base.json", "- (their teacher: the shipped default, Whisper "
                                                                     "base to block 3)")
TABLES["students_corpora"] = lambda: int8_schemes("students-corpora.json", "- (their teacher: the shipped default, "
                                                                         "Whisper base to block 3)")


def update(path: Path) -> int:
    """Rewrite the marked table blocks of ``path``; returns how many were rewritten."""
    text = path.read_text(encoding="utf-8")
    unknown = sorted({m.group(2) for m in MARKER.finditer(text)} - set(TABLES))
    if unknown:
        raise SystemExit(f"{path}: unknown table names {unknown}; choose from {sorted(TABLES)}")
    new, count = MARKER.subn(lambda m: f"{m.group(1)}{TABLES[m.group(2)]()}\n{m.group(4)}", text)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
    return count


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update"]:
        for name in sys.argv[2:]:
            print(f"{name}: {update(Path(name))} tables rewritten")
    else:
        for name in sys.argv[1:] or list(TABLES):
            print(f"### {name}\n\n{TABLES[name]()}\n")
