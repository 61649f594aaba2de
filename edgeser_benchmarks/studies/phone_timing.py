"""Phone-boundary error: the even split used with character CTC, and the default phonemic aligner.

Reference: pocketsphinx 5.1.1's two-pass phone alignment (word alignment, then ``set_alignment``;
``hyp()`` is never read after the second pass, which crashes 5.1.1). Boundaries compared are the ones
inside words (between two phones of the same word).

- Even split: each pocketsphinx word span divided evenly among its pocketsphinx phones. This isolates
  the approximation that character-CTC bundles use for phone times, given perfect word boundaries.
- Default aligner: hama phoneme CTC + edgeser's Viterbi, for words where it finds as many phones as
  pocketsphinx. Its phone shift (CTC spikes come late) is chosen on actors 01-10, reported on 11-20.

    python -m edgeser_benchmarks.studies.phone_timing --per-actor 6 --out benchmarks/results/phone_timing.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from edgeser.alignment.aligner import default_aligner
from edgeser.alignment.phonetics import normalize_words
from edgeser.alignment.segmenter import segment
from edgeser.audio import load_audio
from edgeser.options import SegmentOptions
from edgeser_benchmarks.provenance import write_result
from edgeser_benchmarks.stats import error_summary
from edgeser_benchmarks.studies.align_agreement import DATA, select_files

PHONE_SHIFTS_MS = (0, 20, 40, 60, 80)


def pocketsphinx_phones(decoder: Any, wave: np.ndarray, text: str) -> list[list[tuple[float, float]]] | None:
    """Per word, its phones' (start, end) in seconds; None where pocketsphinx fails."""
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16).tobytes()
    try:
        decoder.set_align_text(" ".join(normalize_words(text)))
        for second_pass in (False, True):
            if second_pass:
                decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
        alignment = decoder.get_alignment()
    except RuntimeError:
        return None
    if alignment is None:
        return None
    return [[(p.start / 100, (p.start + p.duration) / 100) for p in word] for word in alignment
            if word.name not in ("<sil>", "<s>", "</s>") and not word.name.startswith("+")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-actor", type=int, default=6)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from pocketsphinx import Decoder

    aligner = default_aligner()
    even: list[float] = []
    items: list[dict[str, Any]] = []
    failed = 0
    for r in track(select_files(args.per_actor), description="aligning phones"):
        wave = load_audio(DATA / r["path"])
        decoder = Decoder(samprate=16000, loglevel="FATAL")  # fresh per file: 5.1.1 misbehaves on reuse
        ref = pocketsphinx_phones(decoder, wave, r["transcript"])
        if ref is None or len(ref) != len(normalize_words(r["transcript"])):
            failed += 1
            continue
        for phones in ref:
            span = (phones[0][0], phones[-1][1])
            even += [span[0] + i * (span[1] - span[0]) / len(phones) - a for i, (a, _) in enumerate(phones[1:], 1)]
        items.append({"actor": int(r["speaker"].split("_")[1]), "em": aligner.emissions(wave),
                      "text": r["transcript"], "ref": ref})

    def errors(subset: list[dict[str, Any]], shift_ms: int) -> list[float]:
        options = replace(SegmentOptions(), phone_shift_s=shift_ms / 1000)
        out: list[float] = []
        for it in subset:
            seg = segment(it["em"], it["text"], aligner="", options=options)
            for word, phones in zip(seg.words, it["ref"], strict=True):
                mine = [p.start_s for p in seg.phones if word.start_s <= p.start_s < word.end_s]
                if len(mine) == len(phones):
                    out += [a - b for a, (b, _) in zip(mine[1:], phones[1:], strict=True)]
        return out

    tune = [it for it in items if it["actor"] <= 10]
    test = [it for it in items if it["actor"] > 10]
    best = max(PHONE_SHIFTS_MS, key=lambda s: float(np.mean(np.abs(errors(tune, s)) <= 0.05)))
    result = {"reference": "pocketsphinx 5.1.1 phone alignment (two passes)", "files_failed": failed,
              "even_split_given_true_word_spans": error_summary(even),
              "default_aligner_phone_shift_ms": {"chosen": best, "tuned_on": "actors 01-10"},
              "default_aligner_actors_11_20": {"no_shift": error_summary(errors(test, 0)),
                                               "with_shift": error_summary(errors(test, best))}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
