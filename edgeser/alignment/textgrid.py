"""Praat TextGrid (long text format) for a :class:`~edgeser.alignment.segmenter.Segmentation`."""

from __future__ import annotations

from collections.abc import Sequence

from edgeser.alignment.segmenter import Segment, Segmentation


def _intervals(segments: Sequence[Segment], end: float) -> list[tuple[float, float, str]]:
    """Tile ``[0, end]``: the segments, with empty intervals in the gaps (Praat requires no gaps)."""
    out, t = [], 0.0
    for s in segments:
        start = max(s.start_s, t)
        if start > t:
            out.append((t, start, ""))
        if s.end_s > start:
            out.append((start, s.end_s, s.label))
            t = s.end_s
    if end > t:
        out.append((t, end, ""))
    return out


def to_textgrid(seg: Segmentation) -> str:
    """The segmentation as a TextGrid with interval tiers ``words``, ``syllables`` and ``phones``."""
    end = max([seg.duration_s] + [s.end_s for s in seg.words])
    tiers = [("words", seg.words), ("syllables", seg.syllables), ("phones", seg.phones)]
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {end:.4f}",
             "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for k, (name, segments) in enumerate(tiers, 1):
        intervals = _intervals(segments, end)
        lines += [f"    item [{k}]:", '        class = "IntervalTier"', f'        name = "{name}"',
                  "        xmin = 0", f"        xmax = {end:.4f}", f"        intervals: size = {len(intervals)}"]
        for j, (a, b, text) in enumerate(intervals, 1):
            escaped = text.replace('"', '""')
            lines += [f"        intervals [{j}]:", f"            xmin = {a:.4f}", f"            xmax = {b:.4f}",
                      f'            text = "{escaped}"']
    return "\n".join(lines) + "\n"
