"""The entry point: :class:`EmotionRecognizer`."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgeser import default
from edgeser.alignment.ctc.emissions import Emissions
from edgeser.alignment.phonetics.lexicon import Lexicon
from edgeser.alignment.phonetics.p2g import PhonesToWords
from edgeser.alignment.pooling import level_features
from edgeser.alignment.segmenter import Segmentation, segment
from edgeser.audio import SAMPLE_RATE, AudioSource, check_not_silent, load_audio
from edgeser.audio.vad import SPEECH_CHECK_THRESHOLD, Voicing, voicing
from edgeser.backends import Backend, OrtBackend
from edgeser.errors import AlignmentError, AudioError, BundleError, EdgeserError, NoSpeechError
from edgeser.model.bundle import Bundle, HeadSection, SpeechSection, TextSection, graph_metadata
from edgeser.model.graph_io import check_tensors, speech_feeds
from edgeser.model.head import EmotionHead
from edgeser.options import RuntimeOptions, SegmentOptions
from edgeser.results import EncoderOutput, Prediction, TextOutput, Timings
from edgeser.speaker import RunningSpeaker, SpeakerError, SpeakerProfile, SpeakerStats
from edgeser.system import int8_mismatch
from edgeser.text import TextTokenizer, check_transcript

if TYPE_CHECKING:
    from edgeser.streaming import AudioStream, Source, StreamOptions, StreamResult

GraphOpener = Callable[[str, "SpeechSection | TextSection | HeadSection"], Backend]
"""``(role, section) -> Backend``: where a recognizer's graphs run when not in ONNX Runtime here."""

log = logging.getLogger(__name__)


class EmotionRecognizer:
    """Runs a bundle's graphs with ONNX Runtime; numpy only, no torch.

    Example:
        >>> from edgeser import EmotionRecognizer, RuntimeOptions
        >>> rec = EmotionRecognizer.from_bundle("bundles/demo", RuntimeOptions.cpu(threads=2))
        >>> out = rec.encode("edgeser/samples/kids_talking.wav")
        >>> out.hidden_states.shape  # (batch, layers, frames, hidden)
        (1, 1, 108, 768)
        >>> text = rec.embed_text("Kids are talking by the door.")
        >>> text.token_embeddings.shape  # (batch, tokens, hidden)
        (1, 9, 384)
    """

    def __init__(self, bundle: Bundle, options: RuntimeOptions | None = None, *,
                 graphs: GraphOpener | None = None) -> None:
        self.bundle = bundle
        self.options = options or RuntimeOptions()
        self._graphs = graphs
        m = bundle.manifest
        self._speech = self._open(m.speech) if m.speech else None
        self._text = self._open(m.text) if m.text else None
        if m.fusion is not None and m.fusion.uses_text and m.text is None:
            raise BundleError(f"{bundle.path}: its emotion head reads text but the bundle has no text encoder; "
                              "export the bundle with its text encoder (edgeser export --text, edgeser train), or "
                              "use one trained with use_text = false")
        exposed = len(m.speech.exposed_layers) if m.speech else 0
        for name, head in (("fusion", m.fusion), ("speaker_fusion", m.speaker_fusion)):
            if head is not None and not 0 <= head.layer < max(exposed, 1):
                raise BundleError(f"{bundle.path}: bundle.json's {name}.layer is {head.layer}, but the speech graph "
                                  f"exposes {exposed} layer(s) (0-{exposed - 1}); the file was edited, re-export the "
                                  "bundle")
        self._head = EmotionHead(self._open(m.fusion), m.fusion.spec) if m.fusion else None
        self._speaker_head = (EmotionHead(self._open(m.speaker_fusion), m.speaker_fusion.spec)
                                if m.speaker_fusion else None)
        self._p2g: PhonesToWords | None = None
        self._tokenizer = (
            TextTokenizer(bundle.file(m.text.tokenizer),
                          max_tokens=min(m.text.max_tokens, self.options.max_text_tokens),
                          pad_id=m.text.pad_id, pad_token=m.text.pad_token, unk_token=m.text.unk_token)
            if m.text else None)

    @classmethod
    def from_bundle(cls, path: str | os.PathLike[str], options: RuntimeOptions | None = None, *,
                    graphs: GraphOpener | None = None) -> EmotionRecognizer:
        """Load and check the bundle at ``path``; ``"default"`` names the shipped model (built on first use, see
        :mod:`edgeser.default`). ``graphs`` runs the graphs elsewhere: ``graphs(role, section)`` gives a
        :class:`~edgeser.backends.Backend` for ``"speech"``, ``"text"``, ``"fusion"`` or ``"speaker_fusion"``
        (as the Triton pipeline model calls the graph models; see :mod:`edgeser.serving.triton`).

        Raises:
            BundleError: Missing, tampered or inconsistent bundle files.
            BackendUnavailableError: A requested execution provider is not installed.
        """
        options = options or RuntimeOptions()
        path = default.resolve(path)
        return cls(Bundle.load(path, verify_hashes=options.verify_hashes, digest=options.bundle_digest,
                               trusted_keys=options.trusted_keys), options, graphs=graphs)

    def _open(self, section: SpeechSection | TextSection | HeadSection) -> Backend:
        path = self.bundle.file(section.graph)
        backend, where = self._open_elsewhere(section) or (OrtBackend(path, self.options), f"{path}: graph")
        if backend.input_names != section.spec.input_names or backend.output_names != section.spec.output_names:
            raise BundleError(f"{where} has inputs {list(backend.input_names)} and outputs "
                              f"{list(backend.output_names)}, bundle.json declares {list(section.spec.input_names)} "
                              f"and {list(section.spec.output_names)}; re-export the bundle")
        if not isinstance(backend, OrtBackend):  # the checks below read the ONNX session's tensors and metadata
            if self._graphs is None:  # a TensorRT engine: its tensors' types and ranks against the spec
                from edgeser.backends.trt import TrtBackend

                assert isinstance(backend, TrtBackend)
                backend.check_spec(section.spec)
            return backend
        check_tensors(path, section, backend.tensors,
                      len(self.bundle.manifest.labels) if isinstance(section, HeadSection) else None)
        if (why := int8_mismatch(section.provenance)) is not None:
            log.warning("%s: %s", path, why)
        stored = backend.metadata
        for key, want in graph_metadata(section).items():
            if stored.get(key) != want:
                raise BundleError(f"{path}: ONNX metadata {key}={stored.get(key)!r} but bundle.json says {want!r}; "
                                  "the graph and manifest come from different exports, re-export the bundle")
        return backend

    def _open_elsewhere(self, section: SpeechSection | TextSection | HeadSection) -> tuple[Backend, str] | None:
        """The graph through ``graphs`` (given at construction), or as the bundle's TensorRT engine (with
        ``backend="tensorrt"``, refused when it was built from another graph), with what to call it in errors;
        ``None``: ONNX Runtime here."""
        m = self.bundle.manifest
        if self._graphs is not None:
            role = next(r for r, s in (("speech", m.speech), ("text", m.text), ("fusion", m.fusion),
                                       ("speaker_fusion", m.speaker_fusion)) if s is section)
            return self._graphs(role, section), f"the {role} graph served elsewhere"
        if self.options.backend != "tensorrt":
            return None
        role = graph_metadata(section)["edgeser.role"]
        entry = next((e for e in m.engines if e.graph == role), None)
        if entry is None:
            return None
        from edgeser.backends.trt import TrtBackend

        built_from = m.files[section.graph].sha256
        if entry.onnx_sha256 != built_from:
            raise BundleError(f"{self.bundle.file(entry.file)}: built from an ONNX graph with sha256 "
                              f"{entry.onnx_sha256 or '(not recorded)'}, but {section.graph} is {built_from}: "
                              "the engine is stale; rebuild it with `edgeser engines`")
        return TrtBackend(self.bundle.file(entry.file), entry), f"{self.bundle.file(entry.file)}: engine"

    @property
    def head(self) -> EmotionHead | None:
        """The emotion head, where the bundle has one."""
        return self._head

    @property
    def speech(self) -> SpeechSection:
        if self.bundle.manifest.speech is None:
            raise BundleError(f"{self.bundle.path}: this bundle has no speech encoder; export one with --speech")
        return self.bundle.manifest.speech

    def load_audio(self, audio: AudioSource, sample_rate: int | None = None) -> np.ndarray:
        """Read and check audio as the speech encoder needs it (mono float32 at the bundle's rate)."""
        frames = self.speech.frames
        wave = load_audio(audio, sample_rate, target_rate=frames.sample_rate, max_seconds=self.options.max_audio_s,
                          min_samples=frames.receptive_field)
        limit = self.speech.max_samples
        if limit is not None and wave.shape[0] > limit:
            name = audio if isinstance(audio, (str, os.PathLike)) else "audio array"
            raise AudioError(f"{name}: audio is {wave.shape[0] / frames.sample_rate:.1f} s, this bundle's speech "
                             f"encoder ({self.speech.architecture}) takes at most {limit / frames.sample_rate:.1f} s; "
                             "split it into utterances (edgeser listen --file does)")
        return wave

    def encode(self, audio: AudioSource | Sequence[AudioSource], sample_rate: int | None = None) -> EncoderOutput:
        """Run the speech encoder once over one utterance or a batch.

        Args:
            audio: A path or array, or a list of them (batched with zero padding and masks).
            sample_rate: The rate of array inputs (files carry their own).

        Returns:
            Frame embeddings of the exposed layers and CTC log-probabilities, batched.

        Raises:
            AudioError: Unusable audio (see :func:`edgeser.audio.load_audio`).
        """
        sources: list[AudioSource] = list(audio) if isinstance(audio, (list, tuple)) else [audio]  # type: ignore[list-item]
        if not sources:
            raise AudioError("no audio given: pass a path, an array, or a non-empty list of them")
        t0 = time.perf_counter()
        waves = [self.load_audio(s, sample_rate) for s in sources]
        return self._encode_loaded(waves, audio_load_s=time.perf_counter() - t0)

    def _encode_loaded(self, waves: list[np.ndarray], audio_load_s: float | None = None) -> EncoderOutput:
        """:meth:`encode` for waveforms already read and checked by :meth:`load_audio` (not checked again)."""
        section = self.speech
        if self._speech is None:  # unreachable: the speech property raises first
            raise BundleError(f"{self.bundle.path}: speech graph not loaded")
        t1 = time.perf_counter()
        feeds, lengths = speech_feeds(waves, section)
        section.spec.check_feeds(feeds)
        out = self._speech.run(feeds)
        t2 = time.perf_counter()
        hidden = out["hidden_states"]
        num_frames = section.frames.num_frames(lengths)
        if hidden.shape[2] != int(num_frames.max()):
            raise BundleError(f"{self.bundle.path}: the speech graph gave {hidden.shape[2]} frames for "
                              f"{int(lengths.max())} samples, the bundle's frame formula gives "
                              f"{int(num_frames.max())}; the manifest does not describe this graph, re-export it")
        mask = np.arange(hidden.shape[2])[None, :] < num_frames[:, None]
        log_probs = _log_softmax(out["logits"]) * mask[:, :, None] if "logits" in out else None
        hidden = hidden * mask[:, None, :, None]
        return EncoderOutput(hidden_states=hidden, log_probs=log_probs, frame_mask=mask, num_frames=num_frames,
                             num_samples=lengths, layers=section.exposed_layers, hop_s=section.frames.hop_s,
                             timings=Timings(audio_load_s=audio_load_s, speech_encoder_s=t2 - t1))

    def check_profile(self, profile: SpeakerProfile) -> None:
        """Raise unless ``profile`` (a speaker's or a site's, from :meth:`enroll`) can be used with this bundle: it
        has a head for profiles, and the profile was made by its speech encoder and layer.

        Raises:
            BundleError: The bundle has no head for profiles.
            SpeakerError: The profile was made with another encoder or layer.
        """
        fusion = self.bundle.manifest.speaker_fusion
        if fusion is None or self._speaker_head is None:
            raise BundleError(f"{self.bundle.path}: this bundle has no head for enrolled speakers, so a speaker "
                              "profile cannot be used; predict without --speaker, or use a bundle that has one "
                              "(the default does)")
        profile.check(self.speech_sha256, fusion.layer, self.speech.hidden_size, where=str(self.bundle.path))

    def encode_speech(self, wave: np.ndarray, voiced: Voicing | None = None) -> tuple[EncoderOutput, np.ndarray]:
        """One encoder pass over the speech of one utterance (mono float32 at the bundle's rate, as
        :meth:`load_audio` gives it): the span silero-vad calls speech (:meth:`edgeser.audio.vad.Voicing.span`), and the
        mask of its voiced frames (:meth:`~edgeser.audio.vad.Voicing.frame_mask`). What a head with
        ``frame_mask="voiced"`` reads, in prediction, enrolment and training alike: silence around the speech
        changes neither. ``voiced``: silero-vad's pass over ``wave``, when the caller has one.

        Returns:
            The encoder output of the span (batch of 1) and its ``(frames,)`` bool mask.
        """
        voiced = voiced or voicing(wave)
        cut = voiced.span(wave.shape[0])
        encoded = self._encode_loaded([wave[cut]])
        return encoded, voiced.frame_mask(self.speech.frames, int(encoded.num_frames[0]), start=cut.start)

    def _emissions(self, encoded: EncoderOutput, index: int = 0) -> Emissions:
        """The CTC emissions of utterance ``index`` of an :meth:`encode` result, on the bundle's frame grid."""
        frames = self.speech.frames
        vocab = self.speech.require_ctc()
        _, log_probs = encoded.item(index)
        if log_probs is None:
            raise BundleError(f"{self.bundle.path}: the encoder output holds no CTC log-probabilities")
        offset = ((frames.receptive_field - frames.hop_samples) / 2 - frames.offset_samples) / frames.sample_rate
        # (frames are centred)
        return Emissions(log_probs, vocab, hop_s=frames.hop_s, offset_s=offset)

    def segment(self, audio: AudioSource, text: str | None = None, *, sample_rate: int | None = None,
                options: SegmentOptions | None = None, lexicon: Lexicon | None = None) -> Segmentation:
        """Words, syllables and phones with times, from this bundle's CTC head (one encoder pass).

        Args:
            audio: One utterance (path or array).
            text: Its transcript for forced alignment, or ``None`` to decode the words first.
            sample_rate: The rate of an array input.
            options: Boundary rule, unknown-character policy, decoder settings.
            lexicon: Pronunciations (default: CMUdict + hama G2P, from ``edgeser[align]``).

        Raises:
            AudioError: Unusable audio.
            AlignmentError: Silent audio, an empty or unspellable transcript, or too little audio for it.
        """
        wave = self.load_audio(audio, sample_rate)
        check_not_silent(wave)
        if text is not None:
            check_transcript(text, wave.shape[0] / self.speech.frames.sample_rate)
        encoded = self._encode_loaded([wave])
        return self.segment_encoded(encoded, text, options=options, lexicon=lexicon)

    def segment_encoded(self, encoded: EncoderOutput, text: str | None = None, *, index: int = 0,
                        options: SegmentOptions | None = None, lexicon: Lexicon | None = None) -> Segmentation:
        """Like :meth:`segment`, from an :meth:`encode` result: the frame embeddings and the segments come
        from the same encoder pass."""
        name = f"bundle {self.bundle.path.name} ({self.speech.require_ctc().kind} CTC)"
        return segment(self._emissions(encoded, index), text, aligner=name, lexicon=lexicon, options=options)

    def _segment_for_fusion(self, encoded: EncoderOutput, wave: np.ndarray, text: str | None = None, *,
                           options: SegmentOptions | None = None, lexicon: Lexicon | None = None,
                           segmenter: str | None = None) -> Segmentation:
        """The segments the emotion head expects: from the bundle's CTC head (same pass as ``encoded``), or
        from the default phoneme aligner where the head was trained that way (``HeadSection.segmenter``;
        ``segmenter`` overrides it, for computing training features before a head exists), with the boundary
        rule the head was trained with (``HeadSection.boundaries``; it overrides that part of ``options``)."""
        fusion = self.bundle.manifest.fusion
        if fusion is not None and fusion.boundaries is not None:  # cut as the head's training segments were
            options = (options or SegmentOptions()).with_boundary_rule(fusion.boundaries)
        if (segmenter or (fusion.segmenter if fusion is not None else "bundle")) == "hama":
            from edgeser.alignment.aligner import segment_wave

            return segment_wave(wave, text, options=options, lexicon=lexicon)
        return self.segment_encoded(encoded, text, options=options, lexicon=lexicon)

    def _fusion_transcript(self, seg: Segmentation, text: str | None = None) -> str:
        """The text a text-reading emotion head gets: the transcript, or the words decoded from the audio;
        decoded phones (a phonemic segmenter) are first spelled as words, since IPA means nothing to a text
        encoder."""
        if text is not None:
            return text
        fusion = self.bundle.manifest.fusion
        phonemic = ((fusion is not None and fusion.segmenter == "hama") or self.speech.ctc is None
                    or self.speech.ctc.kind == "phonemes")
        return self._spell(seg) if phonemic else seg.transcript

    def _needs_segments(self, text: str | None = None) -> bool:
        """Whether :meth:`predict` must segment: the head pools phones, syllables or words, or reads text that
        was not given (so the words must be decoded). A head that reads only frames does not: its predictions
        run no aligner and no decoder (neither hama nor pyctcdecode is needed)."""
        fusion = self.bundle.manifest.fusion
        if fusion is None:
            return True
        return any(level != "frame" for level in fusion.levels) or (fusion.uses_text and text is None)

    @property
    def speech_sha256(self) -> str:
        """The sha256 of the speech graph: what a speaker profile is tied to."""
        return self.bundle.manifest.files[self.speech.graph].sha256

    def _speaker_layer(self) -> int:
        """The exposed-layer index whose frames speaker profiles describe (the enrolled head's layer)."""
        m = self.bundle.manifest
        head = m.speaker_fusion or m.fusion
        return head.layer if head is not None else len(self.speech.exposed_layers) - 1

    def enroll(self, audio: Sequence[AudioSource], sample_rate: int | None = None, *,
               kind: str = "speaker") -> SpeakerProfile:
        """A speaker's profile from unlabelled recordings of that speaker (any speech, any emotion), or with
        ``kind="site"`` a site's, from unlabelled recordings made there (one microphone and room, any speakers).

        Raises:
            AudioError: An unusable or silent recording, naming it.
            SpeakerError: No recordings.
        """
        if not audio:
            raise SpeakerError("no audio to enrol: pass one or more recordings of the speaker")
        layer = self._speaker_layer()
        head = self.bundle.manifest.speaker_fusion or self.bundle.manifest.fusion
        stats = SpeakerStats(self.speech.hidden_size)
        for source in audio:
            wave = self.load_audio(source, sample_rate)
            check_not_silent(wave)
            if head is not None and head.frame_mask == "voiced":  # the frames the head reads: speech only
                encoded, keep = self.encode_speech(wave)
                frames = encoded.item(0)[0][layer][keep]
            else:
                frames = self._encode_loaded([wave]).item(0)[0][layer]
            stats.add(frames, seconds=frames.shape[0] * self.speech.frames.hop_s)
        return stats.profile(self.speech_sha256, layer, kind)

    def predict(self, audio: AudioSource, text: str | None = None, *, sample_rate: int | None = None,
                options: SegmentOptions | None = None, lexicon: Lexicon | None = None,
                segments: bool = False, speaker: SpeakerProfile | RunningSpeaker | None = None,
                check_speech: bool = True) -> Prediction:
        """The emotion of one utterance: one encoder pass, segmentation (when the head or the caller needs it),
        pooling, text, fusion.

        Args:
            audio: A path or an array (with ``sample_rate``).
            text: The transcript. Without it the words are decoded from the audio and that text is used (by a head
                that reads text).
            segments: Also return timed words, syllables and phones when the head does not need them (a head that
                reads frames only); otherwise ``Prediction.segmentation`` is ``None`` for such a head.
            speaker: The speaker's profile (:meth:`enroll`): the frames are z-scored with it and read by the
                bundle's head for enrolled speakers. A :class:`~edgeser.speaker.RunningSpeaker` learns the profile
                from the utterances it sees (the speaker-independent head until it has heard enough).
            check_speech: Refuse audio that holds no speech (:meth:`check_speech`: raises
                :class:`~edgeser.errors.NoSpeechError`), since the head gives noise a confident label like any other
                input. On by default, as in ``edgeser predict`` and ``edgeser batch``; it reuses the VAD pass the
                default head makes anyway. Streams and the service pass ``False``: their detector found the speech.

        Raises:
            BundleError: The bundle has no emotion head (train one with ``edgeser train``), or no head for
                enrolled speakers when ``speaker`` is given.
            SpeakerError: ``speaker`` was made with another encoder.
            AudioError / AlignmentError / TextError: Unusable input, with the reason.
        """
        running = speaker if isinstance(speaker, RunningSpeaker) else None
        if running is not None and self.bundle.manifest.speaker_fusion is None:
            raise BundleError(f"{self.bundle.path}: this bundle has no head for enrolled speakers, so a running "
                              "speaker estimate cannot be used")
        speaker = running.current() if running is not None else speaker
        fusion, head = self.bundle.manifest.fusion, self._head
        if isinstance(speaker, SpeakerProfile):
            self.check_profile(speaker)
            fusion, head = self.bundle.manifest.speaker_fusion, self._speaker_head
        if head is None or fusion is None:
            raise BundleError(f"{self.bundle.path}: this bundle has no emotion head, so it cannot predict emotions; "
                              "train one with `edgeser train --config ... --out ...`")
        t0 = time.perf_counter()
        wave = self.load_audio(audio, sample_rate)
        check_not_silent(wave)
        seconds = wave.shape[0] / self.speech.frames.sample_rate
        if seconds < MIN_UTTERANCE_S:
            name = audio if isinstance(audio, (str, os.PathLike)) else "audio array"
            raise AudioError(f"{name}: {seconds:.2f} s of audio is too short to hold an utterance (at least "
                             f"{MIN_UTTERANCE_S} s, the stream detector's shortest speech); pass the whole utterance")
        if text is not None:
            check_transcript(text, seconds)
        t_vad = time.perf_counter()
        voiced = voicing(wave) if check_speech or fusion.frame_mask == "voiced" else None
        vad_s = time.perf_counter() - t_vad if voiced is not None else None
        if check_speech:
            self.check_speech(wave, audio if isinstance(audio, (str, os.PathLike)) else "audio array", voiced)
        t1 = time.perf_counter()
        keep: np.ndarray | None = None
        if voiced is not None and fusion.frame_mask == "voiced":
            encoded, keep = self.encode_speech(wave, voiced)
        else:
            encoded = self._encode_loaded([wave])
        t2 = time.perf_counter()
        n = int(encoded.num_frames[0])
        seg = None
        if segments or self._needs_segments(text):  # timed on the whole utterance, not the speech span
            whole = encoded if keep is None or fusion.segmenter == "hama" else self._encode_loaded([wave])
            seg = self._segment_for_fusion(whole, wave, text, options=options, lexicon=lexicon)
        t3 = time.perf_counter()
        frames = encoded.hidden_states[:, fusion.layer]
        if running is not None:  # this utterance joins the estimate for the utterances after it
            layer = self._speaker_layer()
            observed = encoded.hidden_states[0, layer, :n]
            observed = observed if keep is None else observed[keep]
            running.observe(observed, observed.shape[0] * self.speech.frames.hop_s, self.speech_sha256, layer)
        if isinstance(speaker, SpeakerProfile):
            frames = speaker.normalise(frames)
        speech = level_features(frames, encoded.num_frames, [seg] if seg is not None else [], self.speech.frames,
                                fusion.levels, voiced=None if keep is None else keep[None])
        t4 = time.perf_counter()
        transcript = text if text is not None else seg.transcript if seg is not None else None
        text_in, text_s = None, None
        if fusion.uses_text:
            if seg is not None:
                transcript = self._fusion_transcript(seg, text)
            if transcript is None:  # unreachable: _needs_segments() is true without a transcript
                raise AlignmentError("a head that reads text needs the transcript or decoded words")
            embedded = self.embed_text(transcript)
            text_in, text_s = (embedded.token_embeddings, embedded.token_mask), embedded.timings.text_encoder_s
        t5 = time.perf_counter()
        scores = head(speech, text_in)
        t6 = time.perf_counter()
        labels = self.bundle.manifest.labels
        if not all(np.isfinite(v).all() for v in scores.values()):
            raise BundleError(f"{self.bundle.path}: the model gave non-finite scores (NaN or infinity) for this "
                              "audio, so there is no label to give; check the bundle with `edgeser inspect` and "
                              "re-export it if it fails")

        def probabilities(log_probs: np.ndarray) -> dict[str, float]:
            return {label: round(float(p), 6) for label, p in zip(labels, np.exp(log_probs[0]), strict=True)}

        if fusion.temperature != 1.0:  # calibrated (HeadSection.temperature), the branches alike
            scores = {k: _log_softmax(v / fusion.temperature) for k, v in scores.items()}
        probs = probabilities(scores["scores"])
        label = max(probs, key=lambda k: probs[k])
        if self.options.min_confidence is not None and probs[label] < self.options.min_confidence:
            label = UNCERTAIN
        return Prediction(label=label, probabilities=probs,
                          speaker=None if not isinstance(speaker, SpeakerProfile) else
                          f"{'running estimate' if running is not None else f'{speaker.kind} profile'} "
                          f"({speaker.seconds:.0f} s)",
                          branches={k.removesuffix("_scores"): probabilities(v) for k, v in scores.items()
                                    if k != "scores"},
                          transcript=transcript, segmentation=seg,
                          voiced_s=voiced.seconds if voiced is not None else None,
                          timings=Timings(audio_load_s=t_vad - t0, voice_activity_s=vad_s, speech_encoder_s=t2 - t1,
                                          segmentation_s=t3 - t2 if seg is not None else None,
                                          pooling_s=t4 - t3, text_encoder_s=text_s,
                                          fusion_s=t6 - t5))

    def _spell(self, seg: Segmentation) -> str:
        """Decoded phones → words (hama's P2G), for the text branch."""
        if self._p2g is None:
            self._p2g = PhonesToWords()
        words = [[p.label for p in phones] for phones in seg.by_word("phone")]
        spelled = self._p2g(words)
        if not spelled:
            raise AlignmentError("no words could be spelled from the decoded phones; pass the transcript")
        return spelled

    def _text_feeds(self, text: str | Sequence[str]) -> dict[str, np.ndarray]:
        """The text graph's inputs for one text or a batch, checked against its spec.

        Raises:
            TextError: Empty text.
            BundleError: The bundle has no text encoder.
        """
        return self._tokenize(text)[0]

    def _tokenize(self, text: str | Sequence[str]
                  ) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[tuple[str, ...], ...]]:
        if self._tokenizer is None or self.bundle.manifest.text is None:
            raise BundleError(f"{self.bundle.path}: this bundle has no text encoder; export one with --text")
        spec = self.bundle.manifest.text.spec
        all_feeds, tokens = self._tokenizer([text] if isinstance(text, str) else list(text))
        feeds = {name: all_feeds[name] for name in spec.input_names}
        spec.check_feeds(feeds)
        return feeds, all_feeds["attention_mask"].astype(bool), tokens

    def embed_text(self, text: str | Sequence[str]) -> TextOutput:
        """Run the text encoder over one text or a batch; returns token embeddings.

        Raises:
            TextError: Empty text.
            BundleError: The bundle has no text encoder.
        """
        if self._text is None or self._tokenizer is None or self.bundle.manifest.text is None:
            raise BundleError(f"{self.bundle.path}: this bundle has no text encoder; export one with --text")
        t0 = time.perf_counter()
        feeds, mask, tokens = self._tokenize(text)
        hidden = self._text.run(feeds)["last_hidden_state"]
        hidden = hidden * mask[:, :, None]
        return TextOutput(token_embeddings=hidden, token_mask=mask, tokens=tokens,
                          timings=Timings(text_encoder_s=time.perf_counter() - t0))

    def speech_seconds(self, wave: np.ndarray) -> float:
        """Seconds of ``wave`` (16 kHz) that silero-vad calls speech (probability at least 0.5 per 32 ms)."""
        return voicing(wave).seconds

    def check_speech(self, wave: np.ndarray, name: object = "audio array", voiced: Voicing | None = None) -> None:
        """Raise :class:`NoSpeechError` when ``wave`` holds less than :data:`MIN_UTTERANCE_S` of chunks that
        silero-vad scores at least :data:`~edgeser.audio.vad.SPEECH_CHECK_THRESHOLD` (by ``voiced``, its pass over
        ``wave``, when the caller has one)."""
        speech = (voiced or voicing(wave)).seconds_at(SPEECH_CHECK_THRESHOLD)
        if speech < MIN_UTTERANCE_S:
            seconds = wave.size / SAMPLE_RATE
            raise NoSpeechError(f"{name}: no speech found ({speech:.2f} of {seconds:.1f} s may be voice, by "
                                f"silero-vad; at least {MIN_UTTERANCE_S} s is needed): noise, music or silence gets "
                                "no emotion label (pass check_speech=False, or --no-speech-check, to label it "
                                "anyway)")

    def warm_up(self) -> float:
        """Load and run every graph, the segmenter and the decoder once on a second of low noise, so that the
        first real call is not the slow one; returns the seconds it took."""
        t0 = time.perf_counter()
        noise = (0.01 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
        if self._head is not None:  # the whole pipeline: graphs, aligner, lexicon, beam decoder
            try:
                self.predict(noise, sample_rate=SAMPLE_RATE)
            except EdgeserError:  # noise may well hold no words; what mattered was loading
                pass
        if self._speech is not None and self._head is None:
            self._encode_loaded([noise])
        if self._text is not None and (self._head is None or not self._head.uses_text):
            self.embed_text("hello")
        return time.perf_counter() - t0

    def create_stream(self, options: StreamOptions | None = None, *, text: str | None = None,
                      vad: Callable[[np.ndarray], float] | None = None,
                      speaker: SpeakerProfile | RunningSpeaker | None = None) -> AudioStream:
        """A push-style stream: feed it audio with ``accept_waveform(sample_rate, samples)`` and take results
        with ``decode()`` in whichever thread you choose (see :class:`edgeser.streaming.AudioStream`). Call
        :meth:`warm_up` first so that the first utterance does not pay for loading models.

        Args: as :meth:`stream`.
        """
        from edgeser.streaming import AudioStream

        return AudioStream(lambda samples: self.predict(samples, text, sample_rate=SAMPLE_RATE, speaker=speaker,
                                                        check_speech=False),
                           options, vad)

    def stream(self, source: Source, options: StreamOptions | None = None, *, text: str | None = None,
               vad: Callable[[np.ndarray], float] | None = None,
               speaker: SpeakerProfile | RunningSpeaker | None = None) -> Iterator[StreamResult]:
        """Recognise each utterance of a live or recorded stream as it ends (see :mod:`edgeser.streaming`): an
        :meth:`create_stream` fed from ``source`` in the caller's thread and decoded in a worker thread.

        Args:
            source: A :class:`edgeser.streaming.Source` (``file_source``, ``pcm_source``, ``microphone_source``).
            options: :class:`edgeser.streaming.StreamOptions` (VAD thresholds, padding, lengths, back-pressure).
            text: A transcript for every utterance (rarely known live; by default words are decoded).
            vad: A speech-probability function per 512-sample chunk (default: silero-vad).
            speaker: An enrolled speaker's profile, or a :class:`~edgeser.speaker.RunningSpeaker` that learns the
                session's speaker as it goes (see :meth:`predict`).

        Yields:
            :class:`edgeser.streaming.StreamResult`, one per utterance (and per partial, when asked for).
        """
        from edgeser import streaming

        self.warm_up()  # the first utterance should not pay for loading models
        return streaming.stream(lambda samples: self.predict(samples, text, sample_rate=SAMPLE_RATE, speaker=speaker,
                                                             check_speech=False),
                                source, options, vad)

    def __repr__(self) -> str:
        return f"EmotionRecognizer({str(self.bundle.path)!r}, {self.options!r})"


UNCERTAIN = "uncertain"
"""The label of a prediction below ``RuntimeOptions.min_confidence`` (its probabilities are kept)."""
MIN_UTTERANCE_S = 0.25  # StreamOptions.min_speech_s: shorter bursts are not utterances
def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    shifted = x - x.max(axis=-1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out
