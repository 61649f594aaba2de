"""Markdown tables of the committed results, for the README and the model card (so that no figure is copied
by hand): ``python -m benchmarks.tables [probe|folds|enrolment|fast_path]...``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.stats import interval

RESULTS = Path(__file__).resolve().parent / "results"


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
    return "\n".join(lines + lat) + f"\n\n({r['machine']['cpu']}, {r['machine']['cores']} cores, " \
        f"ONNX Runtime {r['machine']['onnxruntime']}; `benchmarks/results/whisper_probe.json`)"


def folds() -> str:
    r = _load("ravdess_folds.json")
    lines = ["| RAVDESS 4-class, 5 actor folds (560 utterances) | UA per fold (01-04 ... 17-20) | UA mean ± std | "
             "pooled UA | pooled WA | minus eGeMAPS [95%] | minus speech frames [95%] |",
             "|---|---|---|---|---|---|---|"]
    from export.default_model import VARIANTS

    order = [n for n in VARIANTS if n in r["summary"]] + [n for n in r["summary"] if n not in VARIANTS]
    for name in order:
        s = r["summary"][name]
        per = " / ".join(pct(f[name]["ua"]) for f in r["folds"])
        eg = r["comparisons"].get(f"{name} minus eGeMAPS")
        sp = r["comparisons"].get(f"{name} minus speech frames")
        if name == "speech: frames, per-speaker normalised":
            eg = r["comparisons"].get("per-speaker: speech frames minus eGeMAPS")
        lines.append(f"| {name} | {per} | {pct(s['ua_mean'])} ± {pct(s['ua_std'])} | {pct(s['pooled_ua'])} | "
                     f"{pct(s['pooled_wa'])} | {interval(eg)} | {interval(sp)} |")
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
        f"{m['cores']} cores; `benchmarks/results/fast_path.json`)"


def precision() -> str:
    r = _load("precision_folds.json")
    lines = ["| encoder of the default (head trained on FP32 frames) | speech.onnx | pooled UA | pooled WA | "
             "minus FP32 [95%] | 1 s / 4 s / 10 s, 1 thread (ratio to FP32) |", "|---|---|---|---|---|---|"]
    lat = r["latency_1_thread"]
    for name, v in r["variants"].items():
        times = " / ".join(f"{lat[c][name]['p50_ms']:.1f} ms (x{lat[c][name]['ratio_to_fp32']['median']:.2f})"
                           for c in ("1s", "4s", "10s"))
        kept = f", {len(v['kept_float'])} nodes kept in float" if v["kept_float"] else ""
        diff = "-" if name == next(iter(r["variants"])) else interval(v["minus_fp32"])
        lines.append(f"| {name}{kept} | {v['speech_mb']} MB | {pct(v['pooled_ua'])} | {pct(v['pooled_wa'])} | "
                     f"{diff} | {times} |")
    return "\n".join(lines) + "\n\n(`benchmarks/results/precision_folds.json`)"


TABLES = {"probe": probe, "folds": folds, "enrolment": enrolment, "fast_path": fast_path, "precision": precision}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(TABLES):
        print(f"### {name}\n\n{TABLES[name]()}\n")
