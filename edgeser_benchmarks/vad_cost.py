"""What the voiced-frame reading costs: silero-vad's pass over an utterance beside the speech encoder's.

A head with ``frame_mask="voiced"`` (the default) needs one silero-vad pass per utterance
(:func:`edgeser.audio.vad.voicing`, 32 ms chunks in order, the model's state carried), and its encoder then hears only
the speech span. ``edgeser predict``'s speech check runs on that same pass, so the CLI pays for it once.

    python -m edgeser_benchmarks.vad_cost --out benchmarks/results/vad_cost.json

Real speech (RAVDESS files of one held-out actor, joined for the longer lengths), one thread, the variants
interleaved round by round after a warm-up round; per length: the p50 of the encoder over the whole utterance,
of the VAD pass, and of the encoder over the speech span; the ratio VAD / encoder round by round (median,
p10-p90). The issue's goal: the VAD pass at most half the encoder's time.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.audio import load_audio
from edgeser.audio.vad import voicing
from edgeser_benchmarks.stats import paired_ratios, percentiles, time_interleaved

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess" / "audio" / "Actor_17"
LENGTHS_S = (2.0, 4.0, 8.0, 16.0)


def speech_of_length(seconds: float) -> np.ndarray:
    """RAVDESS files of actor 17 joined (each with its own silences) and cut to ``seconds``."""
    files = sorted(DATA.glob("*.flac"))
    parts, total = [], 0
    for f in files:
        parts.append(load_audio(f))
        total += parts[-1].size
        if total >= seconds * 16000:
            break
    return np.concatenate(parts)[: int(seconds * 16000)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/vad_cost.json"))
    args = ap.parse_args()
    from edgeser_benchmarks.provenance import write_result

    rec = EmotionRecognizer.from_bundle("default", RuntimeOptions(threads=1))
    rows: dict[str, Any] = {}
    for seconds in LENGTHS_S:
        wave = speech_of_length(seconds)
        voiced = voicing(wave)
        span = wave[voiced.span(wave.size)]
        runs: dict[str, Callable[[], object]] = {
            "encoder, whole utterance": functools.partial(rec.encode, wave, sample_rate=16000),
            "vad pass": functools.partial(voicing, wave),
            "encoder, speech span": functools.partial(rec.encode, span, sample_rate=16000)}
        times = time_interleaved(runs, args.rounds)
        rows[f"{seconds:g} s"] = {
            "span_s": round(span.size / 16000, 3), "voiced_s": round(voiced.seconds, 3),
            "p50_ms": {k: round(1e3 * percentiles(t)["p50"], 2) for k, t in times.items()},
            "vad_over_encoder": {k: round(v, 3) for k, v in
                                 paired_ratios(times["vad pass"], times["encoder, whole utterance"]).items()},
            "voiced_path_over_encoder": {k: round(v, 3) for k, v in paired_ratios(
                [a + b for a, b in zip(times["vad pass"], times["encoder, speech span"], strict=True)],
                times["encoder, whole utterance"]).items()}}
        print(f"{seconds:g} s: vad / encoder {rows[f'{seconds:g} s']['vad_over_encoder']['median']:.2f}, "
              f"vad + span encoder / whole encoder {rows[f'{seconds:g} s']['voiced_path_over_encoder']['median']:.2f}")
    write_result(args.out, {"threads": 1, "rounds": args.rounds, "goal": "vad pass <= 0.5 x encoder",
                            "lengths": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
