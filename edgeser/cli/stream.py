"""The stream commands of ``edgeser``: ``listen`` (a file, stdin or the microphone, cut by the VAD, one result per
utterance) and ``serve`` (the WebSocket service, or whole files on Triton through PyTriton)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edgeser import default
from edgeser.cli.common import MIN_CONFIDENCE, TRUST, err, one_line_errors, runtime_options, styled, trusted_options
from edgeser.recognizer import EmotionRecognizer
from edgeser.speaker import RunningSpeaker, SpeakerProfile


def _print_result(r: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(r.to_dict(), ensure_ascii=False))
        return
    span = f"[{r.start_s:7.2f}-{r.end_s:7.2f} s]{' partial' if r.partial else ''}"
    dropped = f" ({r.dropped_before} dropped before)" if r.dropped_before else ""
    if r.prediction is None:
        click.echo(f"{span} error: {r.error}{dropped}")
        return
    p = r.prediction
    click.echo(f"{span} {p.label:<8} {max(p.probabilities.values()):.2f}  {r.latency_s * 1000:5.0f} ms  "
               f"{p.transcript or ''}{dropped}")


@click.command()
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Read a WAV/FLAC/OGG file.")
@click.option("--stdin", "use_stdin", is_flag=True, help="Read raw little-endian 16-bit PCM from stdin.")
@click.option("--mic", is_flag=True, help="Read the default microphone (needs edgeser[stream]).")
@click.option("--rate", type=click.IntRange(8000, 192000), default=16000, show_default=True,
              help="Sample rate of --stdin / --mic audio (8000-192000 Hz).")
@click.option("--channels", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Channels of --stdin audio (1-8; averaged to mono).")
@click.option("--realtime", is_flag=True, help="Read --file at real-time pace (default: as fast as possible).")
@click.option("--bundle", "bundle_path", default="default", show_default=True, type=click.Path(path_type=Path))
@click.option("--threshold", type=float, default=0.5, show_default=True, help="VAD speech probability.")
@click.option("--min-silence-s", type=float, default=0.3, show_default=True, help="Silence that ends an utterance.")
@click.option("--max-utterance-s", type=float, default=10.0, show_default=True, help="Longer speech is split.")
@click.option("--partial-every", type=float, default=None, help="Partial results every N s of ongoing speech.")
@click.option("--speaker", "speaker_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The speaker's profile from `edgeser enroll`.")
@click.option("--adapt-speaker", type=float, default=None, metavar="SECONDS",
              help="Learn the speaker's profile from the stream itself, used after SECONDS of speech (one speaker).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@MIN_CONFIDENCE
@TRUST
@runtime_options
def listen(file_path: Path | None, use_stdin: bool, mic: bool, rate: int, channels: int, realtime: bool,
           bundle_path: Path, threshold: float, min_silence_s: float, max_utterance_s: float,
           partial_every: float | None, speaker_path: Path | None, adapt_speaker: float | None,
           as_json: bool, min_confidence: float | None, trust: tuple[Path, ...], backend: str, threads: int) -> None:
    """Recognise emotion per utterance of live or recorded audio: one line per utterance."""
    from edgeser import streaming

    if sum([file_path is not None, use_stdin, mic]) != 1:
        raise click.UsageError("give exactly one of --file F, --stdin, --mic")
    if speaker_path is not None and adapt_speaker is not None:
        raise click.UsageError("give --speaker PROFILE or --adapt-speaker SECONDS, not both")
    with one_line_errors():
        speaker: SpeakerProfile | RunningSpeaker | None = (
            SpeakerProfile.load(speaker_path) if speaker_path is not None
            else RunningSpeaker(adapt_speaker) if adapt_speaker is not None else None)
        rec = EmotionRecognizer.from_bundle(default.resolve(bundle_path),
                                            trusted_options(trust, min_confidence, backend, threads))
        source = (streaming.file_source(file_path, realtime=realtime) if file_path is not None
                  else streaming.pcm_source(sample_rate=rate, channels=channels) if use_stdin
                  else streaming.microphone_source(sample_rate=rate))
        # back-pressure "auto": the stream drops for a live source and blocks for a file (StreamOptions.resolved)
        options = streaming.StreamOptions(threshold=threshold, min_silence_s=min_silence_s,
                                          max_utterance_s=max_utterance_s, partial_every_s=partial_every)
        meter = streaming.InputMeter()
        utterances = dropped = 0
        try:
            for r in rec.stream(meter.wrap(source), options, speaker=speaker):
                _print_result(r, as_json)
                utterances += not r.partial
                dropped += r.dropped_before
        except KeyboardInterrupt:
            pass
    err.print(f"{utterances} utterance{'' if utterances == 1 else 's'} in {meter.seconds:.1f} s of audio"
              + (f"; {dropped} dropped to keep up (recognition was slower than the audio)" if dropped else ""))
    for line in meter.advice(utterances, raw_pcm=use_stdin):
        err.print(styled("yellow", "warning:", f" {line}"))


WEBSOCKET_ONLY = ("min_silence_s", "max_utterance_s", "adapt_speaker", "speaker_path", "max_connections",
                  "idle_timeout_s", "queue_size", "origins", "token_env")
"""``serve`` options that only the WebSocket service applies (refused with ``--triton``)."""


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (local by default).")
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--bundle", "bundle_path", default="default", show_default=True, type=click.Path(path_type=Path))
@click.option("--min-silence-s", type=float, default=0.3, show_default=True)
@click.option("--max-utterance-s", type=float, default=10.0, show_default=True)
@click.option("--adapt-speaker", type=float, default=None, metavar="SECONDS",
              help="Learn each connection's speaker from its audio, used after SECONDS of speech.")
@click.option("--speaker", "speaker_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A profile from `edgeser enroll` (--site: the site's) that every connection is predicted with.")
@click.option("--max-connections", type=int, default=32, show_default=True, help="More are refused (HTTP 503).")
@click.option("--idle-timeout-s", type=float, default=60.0, show_default=True,
              help="Close a connection that sends nothing for this long.")
@click.option("--queue-size", type=int, default=8, show_default=True,
              help="Utterances waiting for recognition (all connections); the oldest is dropped and counted.")
@click.option("--origin", "origins", multiple=True, metavar="URL",
              help="A browser origin allowed to connect (repeatable); requests without Origin are always allowed.")
@click.option("--token-env", default=None, metavar="VAR",
              help="Require the token held in environment variable VAR (Authorization: Bearer, or ?token=).")
@click.option("--triton", "use_triton", is_flag=True,
              help="Instead: serve whole files on a Triton server through PyTriton (HTTP on --port, gRPC on "
                   "--port + 1, no metrics port; no token, origin or connection limits: see "
                   "edgeser/serving/pytriton.py).")
@TRUST
@runtime_options
def serve(host: str, port: int, bundle_path: Path, min_silence_s: float, max_utterance_s: float,
          adapt_speaker: float | None, speaker_path: Path | None, max_connections: int, idle_timeout_s: float,
          queue_size: int, origins: tuple[str, ...], token_env: str | None, use_triton: bool,
          trust: tuple[Path, ...], backend: str, threads: int) -> None:
    """A WebSocket service for other processes on the robot: PCM in, one JSON result per utterance out
    (protocol and limits in edgeser/serving/service.py; example client: examples/ws_client.py). Needs edgeser[stream].
    Stops cleanly on Ctrl-C or SIGTERM."""
    import os

    from edgeser.serving.service import ServiceConfig
    from edgeser.serving.service import serve as run_service
    from edgeser.streaming import StreamOptions

    if speaker_path is not None and adapt_speaker is not None:
        raise click.UsageError("give --speaker PROFILE or --adapt-speaker SECONDS, not both")
    ctx = click.get_current_context()
    websocket_only = [p.opts[0] for p in ctx.command.params if p.name in WEBSOCKET_ONLY
                      and ctx.get_parameter_source(p.name) not in (None, click.core.ParameterSource.DEFAULT)]
    if use_triton and websocket_only:  # PyTriton's server applies none of them: refused, never silently ignored
        raise click.UsageError(f"{', '.join(websocket_only)}: the WebSocket service's, not applied by --triton "
                               "(Triton's own server has no token, origin or connection limits; put an "
                               "authenticating proxy in front of it, or serve without --triton)")
    if use_triton:
        from edgeser.serving.pytriton import serve_triton

        with one_line_errors():
            rec = EmotionRecognizer.from_bundle(default.resolve(bundle_path),
                                                trusted_options(trust, None, backend, threads))
            err.print(f"serving on Triton: http://{host}:{port}, grpc {host}:{port + 1} (Ctrl-C to stop)")
            serve_triton(rec, host=host, http_port=port, grpc_port=port + 1)
        return
    with one_line_errors():
        from edgeser._optional import require

        require("websockets", "stream", "edgeser serve")  # before anything is loaded or said to listen
        token = None
        if token_env is not None:
            token = os.environ.get(token_env)
            if not token:
                raise click.ClickException(f"--token-env {token_env}: that environment variable is not set")
        config = ServiceConfig(host=host, port=port, max_connections=max_connections, idle_timeout_s=idle_timeout_s,
                               queue_size=queue_size, origins=origins, token=token, adapt_speaker_s=adapt_speaker,
                               profile=SpeakerProfile.load(speaker_path) if speaker_path is not None else None,
                               stream=StreamOptions(min_silence_s=min_silence_s, max_utterance_s=max_utterance_s))
        rec = EmotionRecognizer.from_bundle(default.resolve(bundle_path),
                                            trusted_options(trust, None, backend, threads))
        err.print(f"listening on ws://{host}:{port} (Ctrl-C to stop)")
        run_service(rec, config)
