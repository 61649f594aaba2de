"""The ``edgeser`` command. Torch-side commands import ``export`` lazily and say what to install."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from edgeser import __version__, default
from edgeser.cli.common import (
    MIN_CONFIDENCE,
    TRUST,
    err,
    one_line_errors,
    out,
    progress_bar,
    ray_options,
    ray_target,
    runtime_options,
    styled,
    trusted_options,
)
from edgeser.cli.stream import listen, serve
from edgeser.errors import BundleError, EdgeserError
from edgeser.model.bundle import Bundle, FileCheck
from edgeser.options import RuntimeOptions
from edgeser.recognizer import EmotionRecognizer
from edgeser.speaker import SpeakerProfile, profile_warning


class _Commands(click.Group):
    """The runtime's commands plus those registered under the ``edgeser.commands`` entry points (pyproject.toml:
    the torch side's ``export``, ``train``, ``quantize`` ..., ``calibration`` and ``bench``). Those are imported
    only when listed or run, so the runtime imports nothing of the packages above it."""

    @staticmethod
    def _registered() -> dict[str, importlib.metadata.EntryPoint]:
        return {ep.name: ep for ep in importlib.metadata.entry_points(group="edgeser.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._registered()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        ep = self._registered().get(name)
        if ep is None:
            return None
        try:
            loaded = ep.load()
        except ImportError as e:
            raise click.ClickException(f"edgeser {name}: its module {ep.value} cannot be imported ({e}); "
                                       "reinstall edgeser") from e
        return loaded if isinstance(loaded, click.Command) else None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeser")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def main(verbose: bool) -> None:
    """edgeser: speech + text emotion recognition for the edge."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False, show_time=False)])
    if not verbose:  # pyctcdecode warns at import that kenlm is absent even when no language model is asked for
        logging.getLogger("pyctcdecode").setLevel(logging.ERROR)


def _inspect_checks(path: Path, verify: bool) -> tuple[Any, list[FileCheck], str]:
    """The manifest, the checks, and the digest, all of one read of bundle.json."""
    from edgeser.model.bundle import MANIFEST, digest_of, manifest_bytes, parse_manifest
    from edgeser.model.signing import read_signature
    from edgeser.model.signing import verify as verify_signature

    raw = manifest_bytes(path.resolve())
    manifest = parse_manifest(raw, path.resolve() / MANIFEST)
    bundle = Bundle(path=path.resolve(), manifest=manifest, digest=digest_of(raw))
    checks = bundle.check_files(verify_hashes=verify)
    try:
        if read_signature(bundle.path) is None:
            checks.append(FileCheck("signature", True, "unsigned (edgeser sign BUNDLE --key KEY signs it)"))
        else:
            signer = verify_signature(bundle.path, raw)
            checks.append(FileCheck("signature", True, f"valid, by key {signer}"))
    except EdgeserError as e:
        checks.append(FileCheck("signature", False, str(e)))
    if all(c.ok for c in checks):
        try:
            EmotionRecognizer(bundle, RuntimeOptions(verify_hashes=False))
            checks.append(FileCheck("graphs", True, "load in ONNX Runtime; names and metadata match bundle.json"))
        except EdgeserError as e:
            checks.append(FileCheck("graphs", False, str(e)))
    return manifest, checks, bundle.digest


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest, its path and the checks as JSON.")
@click.option("--no-verify", is_flag=True, help="Skip sha256 checks (sizes are still checked).")
@click.option("--system", "show_system", is_flag=True,
              help="Describe this machine instead: CPU model and the instruction sets that decide INT8 speed and "
                   "accuracy (avx2, avx512f, avx512_vnni, avx_vnni, amx_int8; asimddp, i8mm on Arm), the INT8 scheme "
                   "that holds here, ONNX Runtime and its providers.")
def inspect(bundle: Path | None, as_json: bool, no_verify: bool, show_system: bool) -> None:
    """Summarise a bundle (a folder, or 'default') and check its files; exit status 1 if any check fails. With
    --system, describe this machine."""
    if show_system:
        from edgeser import system

        info = system.describe()
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return
        t = Table(title="this machine", show_header=False)
        for key, value in info.items():
            t.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
        out.print(t)
        out.print(f"INT8: `edgeser quantize --target auto` makes {info['int8_target']} variants here"
                  + (" (7-bit weights: no VNNI or AMX, so 8-bit ones could saturate)"
                     if info["int8_target"] == "cpu-avx2" else "")
                  + f", activation ranges: {system.int8_method(info['int8_target'])}", markup=False)
        return
    if bundle is None:
        raise click.UsageError("give a BUNDLE (a folder, or 'default') to inspect, or --system to describe this "
                               "machine")
    with one_line_errors():
        bundle = default.resolve(bundle)
        manifest, checks, digest = _inspect_checks(bundle, verify=not no_verify)
    ok = all(c.ok for c in checks)
    if as_json:
        data = {**manifest.to_dict(), "path": str(bundle.resolve()), "digest": digest,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks], "ok": ok}
        click.echo(json.dumps(data, indent=2))
    else:
        _print_inspect(bundle, manifest, checks)
        out.print(f"digest {digest} (pin it with RuntimeOptions(bundle_digest=...))")
    if not ok:
        sys.exit(1)


def _print_inspect(path: Path, m: Any, checks: list[FileCheck]) -> None:
    t = Table(title=f"edgeser bundle {path.resolve()}", show_header=False)
    t.add_row("schema", f"v{m.schema_version}, edgeser {m.edgeser_version}, created {m.created}")
    t.add_row("labels", ", ".join(m.labels))
    if m.speech:
        s = m.speech
        t.add_row("speech", f"{s.graph}: hidden {s.hidden_size}, {s.num_layers} layers, "
                            f"exposes {list(s.exposed_layers)}")
        t.add_row("  frames", f"hop {s.frames.hop_samples} samples ({1e3 * s.frames.hop_s:.0f} ms), receptive field "
                              f"{s.frames.receptive_field}, {s.frames.sample_rate} Hz"
                              + (f", starts {s.frames.offset_samples} samples early"
                                 if s.frames.offset_samples else ""))
        if s.ctc is not None:
            t.add_row("  ctc", f"{len(s.ctc.tokens)} {s.ctc.kind} tokens, blank {s.ctc.tokens[s.ctc.blank_id]!r} "
                               f"(id {s.ctc.blank_id}), word delimiter {s.ctc.word_delimiter!r}")
        else:
            t.add_row("  architecture", f"{s.architecture}, no CTC head (segments from the default aligner); "
                                        f"front end: {(s.front_end or {}).get('kind', '-')}")
        t.add_row("  source", json.dumps(s.provenance.get("source", {})))
        t.add_row("  parity", _parity(s.provenance))
        t.add_row("  precision", _precision(s.provenance)
                  + (f"; {s.provenance['storage']['storage']}" if s.provenance.get("storage") else ""))
    if m.text:
        x = m.text
        t.add_row("text", f"{x.graph}: hidden {x.hidden_size}, max {x.max_tokens} tokens, "
                          f"inputs {list(x.spec.input_names)}")
        t.add_row("  source", json.dumps(x.provenance.get("source", {})))
        t.add_row("  parity", _parity(x.provenance))
        t.add_row("  precision", _precision(x.provenance))
    for role, f in (("emotion head", m.fusion), ("speaker head", m.speaker_fusion)):
        if f is None:
            continue
        kind = "fused: " if f.uses_text or list(f.levels) != ["frame"] else "speech only: "
        data = f.provenance.get("dataset", "unknown data")
        trained = (", ".join(f"{k} ({v.get('utterances', '?')} utts)" for k, v in data.items())
                   if isinstance(data, dict) else f"{data} ({f.provenance.get('utterances', '?')} utts)")
        t.add_row(role, f"{kind}{f.graph}: levels {list(f.levels)}, text {'yes' if f.uses_text else 'no'}, "
                        f"speech layer {f.layer}, pools {f.frame_mask} frames, temperature {f.temperature:g}; "
                        f"trained on {trained}")
        if f.provenance.get("configuration"):
            t.add_row("  recipe", f"{f.provenance['configuration']}; {f.provenance.get('chosen_on', '?')}"
                                  + (f"; {f.provenance['normalisation']}" if f.provenance.get("normalisation") else ""))
        t.add_row("  parity", _parity(f.provenance))
    t.add_row("size", f"{sum(f.bytes for f in m.files.values()) / 1e6:.1f} MB in {len(m.files)} files")
    out.print(t)
    c = Table("check", "ok", "detail")
    for check in checks:
        c.add_row(check.name, Text("yes", "green") if check.ok else Text("NO", "red"), check.detail)
    out.print(c)


def _precision(provenance: dict[str, Any]) -> str:
    q = provenance.get("quantization")
    if not q:
        return "fp32"
    calib = q.get("calibration") or {}
    from edgeser.system import int8_mismatch

    target = q.get("target")
    scheme = f"target {target}" + (f", validated on {', '.join(q['validated_on']['cpu_flags']) or 'no listed flags'}"
                                   if q.get("validated_on") else "") if target else ""
    parts = [q["precision"], scheme, f"{q['method']} calibration on {calib.get('items')} items "
                             f"(sha256 {str(calib.get('sha256'))[:12]}…)" if q.get("method") else "",
             f"{len(q.get('kept_float', []))} nodes kept in float" if q.get("kept_float") else "",
             f"WARNING: {why}" if (why := int8_mismatch(provenance)) else ""]
    return "; ".join(p for p in parts if p)


def _parity(provenance: dict[str, Any]) -> str:
    p = provenance.get("parity")
    if not p:
        return "not recorded"
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in p["max_abs_diff"].items())
    return f"max abs diff {diffs} (tolerance {p['tolerance']:g}, {len(p['cases'])} shapes) via {provenance['exporter']}"


@main.command()
@click.argument("audio", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bundle", "bundle_path", default="default", show_default=True, type=click.Path(path_type=Path),
              help="Bundle folder, or 'default'.")
@click.option("--text", default=None, help="Also run the text encoder on this transcript.")
@click.option("--threads", type=int, default=0, show_default=True, help="Threads per graph (0 = automatic).")
@click.option("--json", "as_json", is_flag=True, help="Print shapes and timings as JSON.")
def encode(audio: tuple[Path, ...], bundle_path: Path, text: str | None, threads: int, as_json: bool) -> None:
    """Run the speech encoder (and text encoder with --text) once; report shapes and timings."""
    with one_line_errors():
        t0 = time.perf_counter()
        rec = EmotionRecognizer.from_bundle(bundle_path, RuntimeOptions(threads=threads))
        load_s = time.perf_counter() - t0
        speech = rec.encode(list(audio))
        text_out = rec.embed_text(text) if text is not None else None
    result: dict[str, Any] = {"bundle": str(rec.bundle.path), "audio": [str(a) for a in audio],
                              "load_s": round(load_s, 4), "speech": speech.to_dict()}
    if text_out is not None:
        result["text"] = text_out.to_dict()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    t = Table("output", "shape", "seconds")
    t.add_row("bundle load", "", f"{load_s:.3f}")
    t.add_row("audio load", "", f"{speech.timings.audio_load_s:.3f}")
    t.add_row("speech hidden_states", str(list(speech.hidden_states.shape)), f"{speech.timings.speech_encoder_s:.3f}")
    if speech.log_probs is not None:
        t.add_row("ctc log_probs", str(list(speech.log_probs.shape)), "")
    if text_out is not None:
        t.add_row("text token_embeddings", str(list(text_out.token_embeddings.shape)),
                  f"{text_out.timings.text_encoder_s:.3f}")
    out.print(t)




@main.command()
@click.argument("audio", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--text", default=None, help="The transcript (forced alignment). Without it, words are decoded.")
@click.option("--bundle", "bundle_path", type=click.Path(path_type=Path), default=None,
              help="Use this bundle's CTC head (one encoder pass). Default: the hama phoneme aligner.")
@click.option("--json", "as_json", is_flag=True, help="Print words, syllables and phones as one JSON object.")
@click.option("--textgrid", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a Praat TextGrid with tiers words, syllables, phones.")
@click.option("--skip-unknown", is_flag=True, help="Leave out characters/phones the aligner cannot express "
                                                   "(default: fail and name them).")
def align(audio: Path, text: str | None, bundle_path: Path | None, as_json: bool, textgrid: Path | None,
          skip_unknown: bool) -> None:
    """Find where each word, syllable and phone of AUDIO lies in time."""
    from edgeser.alignment.textgrid import to_textgrid
    from edgeser.options import SegmentOptions

    options = SegmentOptions(on_unknown="skip" if skip_unknown else "error")
    if textgrid is not None and not textgrid.resolve().parent.is_dir():
        raise click.UsageError(f"--textgrid {textgrid}: the folder {textgrid.resolve().parent} does not exist")
    with one_line_errors():
        if bundle_path is not None:
            seg = EmotionRecognizer.from_bundle(bundle_path).segment(audio, text, options=options)
        else:
            from edgeser.alignment.aligner import align as default_align

            seg = default_align(audio, text, options=options)
        if textgrid is not None:
            tmp = textgrid.with_name(f".{textgrid.name}.tmp")
            tmp.write_text(to_textgrid(seg), encoding="utf-8")
            tmp.replace(textgrid)
    if as_json:
        click.echo(json.dumps(seg.to_dict(), indent=2, ensure_ascii=False))
        return
    out.print(segment_table(seg, str(audio)))
    if seg.skipped:
        err.print(styled("yellow", "left out:", f" {'; '.join(seg.skipped)}"))
    if textgrid is not None:
        err.print(f"wrote {textgrid}")


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 pointed at stderr while the block runs (Python's ``sys.stdout`` object is left alone, so
    ``click.echo`` after it, and under a test runner, is unaffected)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout descriptor (a daemon): nothing to keep clean
        yield
        return
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()  # what Python buffered meanwhile goes where it was written: stderr
        os.dup2(saved, 1)
        os.close(saved)


def segment_table(seg: Any, name: str) -> Table:
    """Words with their times, syllables and phones. Decoded without a transcript by a phoneme recogniser (the
    default's aligner), the "words" are groups of IPA phones, and the table says so."""
    ipa = seg.mode == "decoded" and "IPA" in seg.aligner
    first = "word (IPA phones, decoded: pass --text for the words)" if ipa else "word"
    t = Table(first, "start s", "end s", "score", "syllables", "phones",
              title=f"{name} ({seg.mode}; confidence {seg.confidence:.2f}; {seg.aligner})")
    for w, syllables, phones in zip(seg.words, seg.by_word("syllable"), seg.by_word("phone"), strict=True):
        t.add_row(w.label, f"{w.start_s:.2f}", f"{w.end_s:.2f}", f"{w.score:.2f}",
                  ".".join(s.label for s in syllables), " ".join(p.label for p in phones))
    return t


def distinct_names(paths: Sequence[Path]) -> tuple[list[str], Path | None]:
    """How a table names each file: the part of its path below the folder all of them share, and that folder (a
    single file: its name as given, and ``None``), so that long common prefixes never crowd out what tells rows
    apart."""
    if len(set(paths)) < 2:
        return [str(p) for p in paths], None
    resolved = [p.resolve() for p in paths]
    try:
        common = Path(os.path.commonpath([p.parent for p in resolved]))
    except ValueError:  # different drives
        return [str(p) for p in paths], None
    if len(common.parts) < 3:  # nothing much shared (/, /tmp): the names as given are clearer
        return [str(p) for p in paths], None
    return [str(p.relative_to(common)) for p in resolved], common


def _transcripts(path: Path, audio: Sequence[Path]) -> dict[str, str]:
    """``--transcripts``: resolved audio path -> transcript. Relative paths in the CSV are relative to the CSV's
    own folder; rows that match no AUDIO argument, and AUDIO without a row, are reported."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"path", "transcript"} <= set(reader.fieldnames or []):
                raise click.UsageError(f"{path}: --transcripts needs columns path,transcript")
            rows = {str((path.parent / r["path"]).resolve()): r["transcript"] for r in reader if r.get("path")}
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise click.UsageError(f"--transcripts {path}: cannot read it ({getattr(e, 'strerror', None) or e}); "
                               "pass a UTF-8 CSV with columns path,transcript") from e
    wanted = {str(p.resolve()) for p in audio}
    if unmatched := sorted(set(rows) - wanted):
        err.print(styled("yellow", f"--transcripts: {len(unmatched)} rows name no AUDIO given (paths are relative to "
                                   f"the CSV's folder), e.g. {unmatched[0]}"))
    if missing := [str(p) for p in audio if str(p.resolve()) not in rows]:
        err.print(styled("yellow", f"--transcripts: no row for {len(missing)} AUDIO, e.g. {missing[0]}; predicted "
                                   "without a transcript"))
    return rows


@main.command()
@click.argument("audio", nargs=-1, required=True, type=click.Path(path_type=Path))  # a folder: a pointer to batch
@click.option("--bundle", "bundle_path", default="default", show_default=True, type=click.Path(path_type=Path),
              help="A bundle with an emotion head (from `edgeser train`), or 'default': the shipped model.")
@click.option("--text", default=None, help="The transcript (for a single AUDIO).")
@click.option("--transcripts", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV with columns path,transcript, for several files.")
@click.option("--segments", is_flag=True, help="Also return timed words, syllables and phones (segmenting even "
                                               "when the head reads only frames; needs edgeser[align]).")
@click.option("--speaker", "speaker_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The speaker's profile from `edgeser enroll` (all AUDIO files are that speaker).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line and file.")
@click.option("--speech-check/--no-speech-check", default=True, show_default=True,
              help="Refuse files without speech (silero-vad, shipped with edgeser; about 2x the time).")
@MIN_CONFIDENCE
@TRUST
@runtime_options
def predict(audio: tuple[Path, ...], bundle_path: Path, text: str | None, transcripts: Path | None,
            segments: bool, speaker_path: Path | None, as_json: bool, speech_check: bool,
            min_confidence: float | None, trust: tuple[Path, ...], backend: str, threads: int) -> None:
    """The emotion of each AUDIO file (with its words, syllables and phones when the head uses them or --segments
    asks for them)."""
    if text is not None and (transcripts is not None or len(audio) > 1):
        raise click.UsageError("--text is for one file; use --transcripts CSV for several")
    by_path = _transcripts(transcripts, audio) if transcripts else {}
    with one_line_errors():
        rec = EmotionRecognizer.from_bundle(default.resolve(bundle_path),
                                            trusted_options(trust, min_confidence, backend, threads))
        profile = SpeakerProfile.load(speaker_path) if speaker_path is not None else None
        rows = []
        failed: list[str] = []
        names, common = distinct_names(audio)
        shown = dict(zip(audio, names, strict=True))
        tables = []
        for path in audio:  # one bad file is reported in its row; the others are still predicted
            try:
                result = rec.predict(path, text if text is not None else by_path.get(str(path.resolve())),
                                     segments=segments, speaker=profile, check_speech=speech_check)
            except EdgeserError as e:
                message = str(e) if str(path) in str(e) else f"{path}: {e}"
                failed.append(message)
                if as_json:
                    click.echo(json.dumps({"path": str(path), "error": message}, ensure_ascii=False))
                else:
                    rows.append([shown[path], "error", *([""] * len(rec.bundle.manifest.labels)), None])
                continue
            if as_json:
                click.echo(json.dumps({"path": str(path), **result.to_dict()}, ensure_ascii=False))
            else:
                rows.append([shown[path], result.label, *(f"{p:.2f}" for p in result.probabilities.values()),
                             result.transcript])
                if segments and result.segmentation is not None:
                    tables.append(segment_table(result.segmentation, shown[path]))
    if not as_json:
        with_text = any(r[-1] is not None for r in rows)  # a frames-only head without transcripts has none
        table = Table("file", "label", *rec.bundle.manifest.labels, *(["transcript"] if with_text else []),
                      caption=f"files under {common}" if common is not None else None)
        table.columns[0].overflow = "fold"  # a long name wraps; it is never cut
        for r in rows:
            table.add_row(*r[:-1], *([r[-1] or ""] if with_text else []))
        out.print(table)
        for t in tables:
            out.print(t)
        for message in failed:
            err.print(styled("red", "error:", f" {message}"))
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(audio)} files could not be predicted (each named above)")




@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--bundle", "bundle_path", default="default", show_default=True, help="A bundle folder or 'default'.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="The job's folder: part-NNNNN.jsonl and .parquet shards, batch.json, summary.json. Rerun to resume.")
@click.option("--segments", is_flag=True, help="Also record timed words, syllables and phones.")
@click.option("--speech-check/--no-speech-check", default=True, show_default=True,
              help="Record files without speech as errors (silero-vad first), as predict does.")
@click.option("--shard-size", type=int, default=256, show_default=True, help="Files per shard.")
@click.option("--threads", type=int, default=1, show_default=True, help="ONNX Runtime threads per recognizer.")
@click.option("--speaker", "speaker_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A profile from `edgeser enroll` (--site: the site's) that every file is predicted with.")
@ray_options("Recognizer actors on Ray (default: the cluster's CPUs).")
@click.option("--overwrite", is_flag=True, help="Start again if --out holds a job of other inputs or settings.")
def batch(source: Path, bundle_path: str, out: Path, segments: bool, speech_check: bool, shard_size: int,
          threads: int, speaker_path: Path | None, use_ray: bool, ray_address: str | None, workers: int | None,
          overwrite: bool) -> None:
    """Predict every file of SOURCE (a CSV with a 'path' column, or a folder of audio) into JSONL and Parquet
    shards: one record per file (errors recorded and counted, never fatal), resumable."""
    from edgeser.batch import BatchConfig, read_inputs, run

    address, workers = ray_target(use_ray, ray_address, workers)
    with one_line_errors():
        items = read_inputs(source)
        if speaker_path is not None:
            SpeakerProfile.load(speaker_path)  # a missing or broken profile is refused before any file
        config = BatchConfig(bundle=bundle_path, segments=segments, check_speech=speech_check, threads=threads,
                             shard_size=shard_size,
                             profile=str(speaker_path.resolve()) if speaker_path is not None else None)
        # stdout is the summary's alone: what Ray writes to the process's stdout while it runs and as it shuts down
        # (cluster warnings, from its C++ side too) goes to stderr, and Ray is shut down before the summary
        with stdout_to_stderr(), progress_bar(f"{len(items)} files", len(items)) as progress:
            try:
                summary = run(items, out, config, ray_address=address, workers=workers, overwrite=overwrite,
                              progress=progress)
            finally:
                if address is not None and "ray" in sys.modules:
                    sys.modules["ray"].shutdown()
    click.echo(json.dumps(summary, indent=2))
    if summary["errors"]:
        err.print(styled("yellow", f"{summary['errors']} of {summary['files']} files failed",
                         f" (their records say why: status 'error' in {out}/part-*.jsonl)"))


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The model repository folder to write.")
@click.option("--backend", type=click.Choice(["onnxruntime", "tensorrt"]), default="onnxruntime", show_default=True,
              help="How Triton runs the graphs: ONNX Runtime on the ONNX files, or the bundle's TensorRT engines.")
@click.option("--max-batch", type=int, default=8, show_default=True, help="max_batch_size of the graph models.")
@click.option("--instances", type=int, default=1, show_default=True, help="Instances of each model.")
@click.option("--overwrite", is_flag=True)
def triton(bundle: Path, out: Path, backend: str, max_batch: int, instances: int, overwrite: bool) -> None:
    """Write a Triton model repository for BUNDLE (a folder or 'default'): one model per graph and a Python-backend
    model that runs the edgeser pipeline around them."""
    from edgeser.serving.triton import write_repository

    with one_line_errors():
        result = write_repository(bundle, out, backend=backend, max_batch=max_batch, instances=instances,
                                  overwrite=overwrite, progress=err.print)
    click.echo(json.dumps(result, indent=2))


@main.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The private key file to write; its public key goes to OUT.pub.")
def keygen(out: Path) -> None:
    """A new Ed25519 key pair for signing bundles (needs edgeser[sign]). Keep the private key off the robot;
    give the robot the .pub file (`--trust`)."""
    from edgeser.model.signing import generate_key, key_id

    with one_line_errors():
        private, public = generate_key(out)
        err.print(styled("green", "wrote", f" {private} (private, mode 600) and {public} "
                                           f"(key {key_id(public.read_text())})"))


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--key", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The private key from `edgeser keygen`.")
def sign(bundle: Path, key: Path) -> None:
    """Sign BUNDLE (its bundle.json, which lists every file's sha256) into BUNDLE/bundle.sig."""
    from edgeser.model.signing import sign_bundle

    with one_line_errors():
        Bundle.load(bundle)  # only a bundle whose files check out is worth signing
        signer = sign_bundle(bundle.resolve(), key)
    err.print(styled("green", "signed", f" {bundle} with key {signer}"))


@main.command()
@click.argument("audio", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bundle", "bundle_path", default="default", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The speaker profile to write (JSON).")
@click.option("--overwrite", is_flag=True, help="Replace an existing profile.")
@click.option("--site", is_flag=True, help="A site's profile: AUDIO recorded there (one microphone and room), by any "
                                           "speakers; it adapts the model to the site without labels.")
@runtime_options
def enroll(audio: tuple[Path, ...], bundle_path: Path, out: Path, overwrite: bool, site: bool, backend: str,
           threads: int) -> None:
    """A speaker's profile from unlabelled recordings of that one speaker (any speech; a minute or two is best), or
    with --site a site's, for `predict --speaker` and `listen --speaker`."""
    with one_line_errors():
        if out.exists() and not overwrite:
            raise click.UsageError(f"{out}: already exists; choose another --out or pass --overwrite")
        rec = EmotionRecognizer.from_bundle(default.resolve(bundle_path),
                                            RuntimeOptions.named(backend, threads))
        if rec.bundle.manifest.speaker_fusion is None:
            raise BundleError(f"{rec.bundle.path}: this bundle has no head for enrolled speakers; a profile would "
                              "not be used (the default bundle has one)")
        profile = rec.enroll(list(audio), kind="site" if site else "speaker")
        profile.save(out)
    plural = "" if profile.utterances == 1 else "s"
    err.print(styled("green", "wrote", f" {out}: {profile.kind} profile, {profile.seconds:.1f} s of speech (voiced "
                                       f"frames) from {profile.utterances} recording{plural} ({profile.frames} "
                                       f"frames of the speech graph's output {profile.layer}, encoder block "
                                       f"{rec.speech.exposed_layers[profile.layer]})"))
    if (warning := profile_warning(profile)) is not None:
        err.print(styled("yellow", "warning:", f" {warning}"))


main.add_command(listen)  # the stream commands, from edgeser/cli/stream.py
main.add_command(serve)
