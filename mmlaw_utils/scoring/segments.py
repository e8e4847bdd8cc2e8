"""Byte-aligned token losses and segmentations of a text (pure functions; no I/O, no models).

Positions are byte offsets into the text's UTF-8 encoding. A segmentation of a text of ``n``
bytes is an increasing int64 array of segment *ends* whose last entry is ``n``; segment ``k``
covers bytes ``[ends[k-1], ends[k])`` (``ends[-1]`` read as 0), so segments tile the bytes.

**Token ends (the attribution rule).** A tokenizer's offsets are character spans; a character
index ``i`` becomes byte ``len(text[:i].encode())``. Each token gets one *end byte*:

* a token with a non-empty span ends at its span's end, converted to bytes. A token holding
  part of a multi-byte character (byte-level BPE splits a character over several tokens, each
  reporting the whole character as its span) therefore ends after that character's last byte;
* a token with an empty span (byte fallback pieces, special tokens, a lone metaspace) takes the
  end of the next token with a non-empty span; trailing ones take the text's end;
* ends are then made non-decreasing (running maximum) and the last token ends at the text's
  end, so offsets that skip trailing bytes (stripped whitespace) still cover the whole text.

A token's loss belongs to the segment that holds its last byte, ``end - 1``. Summed over a
text's segments, the losses are the text's loss, whatever the segmentation.

**Segmentations** (``SEGMENTATIONS``):

* ``text``: one segment.
* ``line``: ends after every ``"\\n"`` (so ``"\\r\\n"`` stays in its line); the last line runs to the end.
* ``word``: whitespace-delimited words, each with its leading whitespace (regex ``\\s*\\S+``,
  Python's Unicode ``\\s``); trailing whitespace joins the last word.
* ``sentence``: a sentence ends at the end of a word that ends in terminal punctuation
  (``.!?…`` or the full-width ``。！？``, optionally followed by closing quotes or brackets),
  or at the end of a word followed by whitespace that holds a line break; also right after
  ``。！？`` inside a run without spaces (Chinese, Japanese). No abbreviation list: "e.g. x"
  splits after "e.g.". Like words, a sentence carries its leading whitespace, so sentence ends
  are word ends except after a full-width terminal inside a word.
* ``common_token``: the ends shared by the token ends of every model given (plus the text's
  end): the finest segmentation whose boundaries are token boundaries of all of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

SEGMENTATIONS = ("text", "line", "sentence", "word", "common_token")
# bumped when a rule above changes, so stored segment files built by an older rule are stale
SEGMENTATION_RULES_VERSION = 1

_WORD = re.compile(r"\s*\S+")
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’»)\]}」』]*$")
_FULL_WIDTH_END = re.compile(r"[。！？][\"'”’»)\]}」』]*")


def char_to_byte(text: str) -> np.ndarray:
    """Byte offset (UTF-8) of every character index 0..len(text), as int64."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    widths = 1 + (codes >= 0x80) + (codes >= 0x800) + (codes >= 0x10000)
    return np.concatenate([[0], np.cumsum(widths, dtype=np.int64)])


def token_byte_ends(text: str, char_spans: np.ndarray) -> np.ndarray:
    """End byte of each token (the attribution rule of the module docstring) from [n x 2] character spans."""
    spans = np.asarray(char_spans, dtype=np.int64).reshape(-1, 2)
    n_bytes = len(text.encode("utf-8"))
    if len(spans) == 0:
        return np.zeros(0, dtype=np.int64)
    to_byte = char_to_byte(text)
    clipped = np.clip(spans, 0, len(text))
    empty = clipped[:, 1] <= clipped[:, 0]
    own_end = np.where(empty, n_bytes, to_byte[clipped[:, 1]])
    # an empty span takes the next non-empty end: a reversed running minimum over the ends after it
    next_end = np.minimum.accumulate(own_end[::-1])[::-1]
    ends = np.where(empty, next_end, own_end)
    ends = np.maximum.accumulate(ends)
    ends[-1] = n_bytes
    return np.minimum(ends, n_bytes)


def token_spans(ends: np.ndarray) -> np.ndarray:
    """[n x 2] byte spans [start, end) of tokens with the given end bytes (each starts where the previous ends)."""
    ends = np.asarray(ends, dtype=np.int64)
    return np.column_stack([np.concatenate([[0], ends[:-1]]), ends])


def _char_ends_to_bytes(text: str, char_ends: Sequence[int]) -> np.ndarray:
    """Sorted unique byte ends of segments given as character ends, with the text's end appended."""
    to_byte = char_to_byte(text)
    ends = to_byte[np.asarray(list(char_ends) + [len(text)], dtype=np.int64)]
    return np.unique(ends[ends > 0])


def word_ends(text: str) -> np.ndarray:
    """Byte ends of whitespace-delimited words, each with its leading whitespace."""
    return _char_ends_to_bytes(text, [m.end() for m in _WORD.finditer(text)][:-1])


def line_ends(text: str) -> np.ndarray:
    """Byte ends of lines, each with its terminating newline."""
    return _char_ends_to_bytes(text, [m.end() for m in re.finditer("\n", text)])


def sentence_ends(text: str) -> np.ndarray:
    """Byte ends of sentences (rule in the module docstring), each with its leading whitespace."""
    ends = []
    for match in _WORD.finditer(text):
        word = match.group().lstrip()
        follow = re.match(r"\s*", text[match.end():]).group()
        if _SENTENCE_END.search(word) or "\n" in follow:
            ends.append(match.end())
        start = match.end() - len(word)
        ends.extend(start + m.end() for m in _FULL_WIDTH_END.finditer(word))
    return _char_ends_to_bytes(text, ends)


def text_ends(text: str) -> np.ndarray:
    """The one segment of a text: its byte length."""
    return np.array([len(text.encode("utf-8"))], dtype=np.int64)


def common_token_ends(token_ends_per_model: Sequence[np.ndarray], n_bytes: int) -> np.ndarray:
    """Byte ends that are token ends of every model (plus ``n_bytes``): the common-token segmentation."""
    if not token_ends_per_model:
        raise ValueError("the common-token segmentation needs the token ends of at least one model")
    shared = np.unique(np.asarray(token_ends_per_model[0], dtype=np.int64))
    for ends in token_ends_per_model[1:]:
        shared = np.intersect1d(shared, np.asarray(ends, dtype=np.int64), assume_unique=False)
    return np.union1d(shared[(shared > 0) & (shared < n_bytes)], [n_bytes]).astype(np.int64)


def segment_ends(text: str, segmentation: str, token_ends_per_model: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Byte ends of ``segmentation`` (one of SEGMENTATIONS) for ``text``; common_token needs every model's token ends."""
    if segmentation == "common_token":
        if token_ends_per_model is None:
            raise ValueError("segmentation 'common_token' needs the token ends of every pool model")
        return common_token_ends(token_ends_per_model, len(text.encode("utf-8")))
    makers = {"text": text_ends, "line": line_ends, "sentence": sentence_ends, "word": word_ends}
    if segmentation not in makers:
        raise ValueError(f"unknown segmentation {segmentation!r}; choose from {list(SEGMENTATIONS)}")
    return makers[segmentation](text)


def segment_losses(token_ends: np.ndarray, token_nll: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Summed token losses (float64 nats) per segment: each token counts in the segment holding its last byte."""
    token_ends = np.asarray(token_ends, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if len(token_ends) and (token_ends.min() < 1 or token_ends.max() > ends[-1]):
        raise ValueError(f"token ends {token_ends.min()}..{token_ends.max()} fall outside the text's bytes 1..{ends[-1]}")
    owner = np.searchsorted(ends, token_ends - 1, side="right")
    return np.bincount(owner, weights=np.asarray(token_nll, dtype=np.float64), minlength=len(ends))
