"""Text in: the bundle's tokenizer (a Hugging Face ``tokenizers`` JSON file), no transformers needed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from edgeser.errors import BundleError, TextError

log = logging.getLogger(__name__)

_UNK_SHARE_WARN = 0.5
MAX_CHARACTERS_PER_S = 40  # fast read speech is about 15 characters a second
MAX_WORD_LETTERS = 60  # the longest dictionary words have about 45


def check_transcript(text: object, seconds: float) -> str:
    """Refuse, before any work, a transcript that cannot be this audio's: not a string, not valid Unicode, far
    longer than ``seconds`` of speech could say, or with a "word" no language has (each would cost the aligner
    seconds to minutes). Returns the text.

    Raises:
        TextError: Saying which limit and why.
    """
    if not isinstance(text, str):
        raise TextError(f"the transcript is {type(text).__name__}, expected str")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TextError(f"the transcript has a character that is not valid Unicode at position {e.start} "
                        f"({text[e.start]!r}, a lone surrogate); decode the text with errors='replace'") from e
    limit = int(MAX_CHARACTERS_PER_S * seconds) + 100
    if len(text) > limit:
        raise TextError(f"the transcript has {len(text)} characters for {seconds:.1f} s of audio (at most {limit}: "
                        f"{MAX_CHARACTERS_PER_S} a second); is it this audio's transcript?")
    longest = max(text.split(), key=len, default="")
    if len(longest) > MAX_WORD_LETTERS:
        raise TextError(f"the transcript has a {len(longest)}-character word ({longest[:20]!r}...; at most "
                        f"{MAX_WORD_LETTERS}); separate its words with spaces")
    return text


class TextTokenizer:
    """Turns texts into padded ``input_ids``/``attention_mask``/``token_type_ids`` arrays."""

    def __init__(self, path: Path, *, max_tokens: int, pad_id: int, pad_token: str, unk_token: str | None) -> None:
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a plain Exception for bad files
            raise BundleError(f"{path}: cannot load the tokenizer ({e}); re-export the bundle") from e
        self._tok.enable_truncation(max_length=max_tokens)
        self._tok.enable_padding(pad_id=pad_id, pad_token=pad_token)
        self.max_tokens = max_tokens
        self.unk_token = unk_token

    def __call__(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], tuple[tuple[str, ...], ...]]:
        """Tokenize; returns the feeds (int64, padded) and each text's tokens.

        Raises:
            TextError: Empty text, or a text that is not a string.
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TextError(f"text {i} is {type(t).__name__}, expected str")
            if not t.strip():
                raise TextError(f"text {i} is empty; pass the utterance's transcript, or no text at all")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as e:
                raise TextError(f"text {i} has a character that is not valid Unicode at position {e.start} (a lone "
                                "surrogate); decode the text with errors='replace'") from e
        encodings = self._tok.encode_batch(list(texts))
        tokens = []
        for text, enc in zip(texts, encodings, strict=True):
            n = int(sum(enc.attention_mask))
            toks = tuple(enc.tokens[:n])
            if len(enc.overflowing) > 0:
                log.warning("text truncated to %d tokens (RuntimeOptions.max_text_tokens): %.40r...",
                            self.max_tokens, text)
            content = [t for t, special in zip(toks, enc.special_tokens_mask[:n], strict=True) if not special]
            if self.unk_token is not None and content:
                share = sum(t == self.unk_token for t in content) / len(content)
                if share > _UNK_SHARE_WARN:
                    log.warning("%.0f%% of tokens are unknown to the text encoder's vocabulary (is the text in "
                                "the language it was trained on?): %.40r", 100 * share, text)
            tokens.append(toks)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return feeds, tuple(tokens)
