"""Segmentation and pooling time as a fraction of the speech encoder's time, for 1, 4 and 10 s of audio.

The encoder is a wav2vec2-base-size bundle (random weights: its speed is a trained model's speed);
segmentation is forced alignment of a transcript of natural length (~2.5 words/s) on its character
CTC head, and pooling averages the frames over words, syllables and phones. The default aligner
(hama phoneme CTC) is timed too: its own forward pass plus the same segmentation.

    python -m edgeser_benchmarks.studies.segment_speed --bundle bundles/demo \
        --out benchmarks/results/segment_speed.json
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edgeser import EmotionRecognizer, RuntimeOptions
from edgeser.alignment.aligner import default_aligner
from edgeser.alignment.phonetics import Lexicon
from edgeser.alignment.pooling import pool
from edgeser.alignment.segmenter import segment
from edgeser.audio import load_audio
from edgeser_benchmarks.provenance import write_result

SAMPLE = Path(__file__).resolve().parents[2] / "edgeser" / "samples" / "kids_talking.wav"
T = TypeVar("T")
WORDS = "kids are talking by the door and the dogs are sitting by the window today".split()


def pool_levels(hidden: np.ndarray, seg: Any, frames: Any) -> list[Any]:
    return [pool(hidden, seg.level(lv), frames) for lv in ("word", "syllable", "phone")]


def timed(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """The median seconds of ``repeats`` calls of ``fn``, and its last result."""
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True, help="a wav2vec2-base-size bundle (edgeser export)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rec = EmotionRecognizer.from_bundle(args.bundle, RuntimeOptions(threads=args.threads))
    hama = default_aligner()
    Lexicon.default().pronounce("warm")  # load CMUdict outside the timings
    sample = load_audio(SAMPLE)
    rows = []
    for seconds in (1, 4, 10):
        wave = np.resize(sample, int(seconds * 16000))
        text = " ".join(WORDS[i % len(WORDS)] for i in range(max(1, int(2.5 * seconds))))
        enc_s, encoded = timed(functools.partial(rec.encode, wave, sample_rate=16000), args.repeats)
        em = rec._emissions(encoded)
        seg_s, seg = timed(functools.partial(segment, em, text, aligner="bundle"), args.repeats)
        levels = functools.partial(pool_levels, encoded.hidden_states[0], seg, rec.speech.frames)
        pool_s, _ = timed(levels, args.repeats)
        hama_em_s, hem = timed(functools.partial(hama.emissions, wave), args.repeats)
        hama_seg_s, _ = timed(functools.partial(segment, hem, text, aligner="hama"), args.repeats)
        rows.append({"audio_s": seconds, "words": len(text.split()), "encoder_ms": round(1e3 * enc_s, 1),
                     "segmentation_ms": round(1e3 * seg_s, 2), "pooling_ms": round(1e3 * pool_s, 2),
                     "segmentation_plus_pooling_over_encoder": round((seg_s + pool_s) / enc_s, 4),
                     "hama_emissions_ms": round(1e3 * hama_em_s, 1),
                     "hama_segmentation_ms": round(1e3 * hama_seg_s, 2)})
        print(rows[-1])
    result = {"bundle": str(args.bundle), "threads": args.threads, "repeats": args.repeats, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
