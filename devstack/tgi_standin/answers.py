"""What the stand-in answers: deterministic text, TGI-shaped tokens, and the JSON shapes
of a finished answer (``/generate``) and of chat answers, streamed or not.

Tokenization is approximate: one token per whitespace-separated word of the input (and
of the rendered chat prompt). Generated tokens are words with a leading space, like a
SentencePiece tokenizer produces mid-sentence; in chat the first token has none, as chat
templates end with a newline.

If the prompt holds numbered passages (lines starting ``[1] ...``, ``[2] ...``, as
Sluice's prompts do) the answer quotes a few words of each of the first passages and
cites them, e.g. ``" Paris is the capital of France [1]. The Eiffel Tower ... [2]."``;
otherwise it repeats a fixed sentence. It is ``min(max_new_tokens, answer_tokens)``
words long; ``answer_text()`` is what ``/generate`` answers, for assertions.

When generation stops on its own (not on max_new_tokens) the last token is a special
end-of-sequence token (``"</s>"``, ``special: true``), counted in generated_tokens but not
in generated_text, with finish_reason "eos_token" ("stop" in chat), as TGI does; Sluice's
TGI backend filters it out by ``special`` and tests check that it does.

Kept though Sluice never reads it: each token's ``id`` and ``logprob`` and the details'
``seed``/``prefill``: TGI always sends them, and ``InferenceClient`` parses the token
objects that hold the ``special`` flag Sluice does read. Cut: stop sequences, sampling
seeds, prefill (decoder_input_details), chat logprobs and ``stream_options`` usage chunks,
multi-part chat content: Sluice sends none of them.
"""
from __future__ import annotations

import dataclasses
import re
import time
import zlib
from collections.abc import Iterator
from typing import Any

MODEL_ID = "sluice/tgi-standin"
TGI_VERSION = "3.3.6"
EOS_TOKEN_ID = 2
EOS_TOKEN_TEXT = "</s>"
DEFAULT_ANSWER_TOKENS = 32
QUOTE_WORDS = 6  # words quoted from a passage before citing it
CITED_PASSAGES = 3  # the answer quotes the first this-many passages, then cycles
FALLBACK_ANSWER = (
    "The stand-in found no numbered passages in the prompt, so it answers with this fixed sentence."
)

_PASSAGE_RE = re.compile(r"^[ \t]*\[(\d+)\][ \t]*(\S.*)$", re.MULTILINE)
_TRAILING_PUNCTUATION = ".,;:!?"


def input_token_count(text: str) -> int:
    """The stand-in's approximate tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def _token(text: str, *, special: bool = False) -> dict[str, Any]:
    if special:
        return {"id": EOS_TOKEN_ID, "text": text, "logprob": -0.0001, "special": True}
    # Stable ids clear of the special ones at the bottom of a typical vocabulary.
    token_id = 3 + zlib.crc32(text.encode()) % 31997
    logprob = -round(0.01 + (zlib.crc32(text.encode()[::-1]) % 1000) / 400, 4)
    return {"id": token_id, "text": text, "logprob": logprob, "special": False}


def _passages(prompt: str) -> list[tuple[str, list[str]]]:
    seen: dict[str, list[str]] = {}
    for match in _PASSAGE_RE.finditer(prompt):
        number, text = match.group(1), match.group(2)
        words = text.split()
        if number not in seen and words:
            seen[number] = words
    return list(seen.items())


def _answer_words(prompt: str) -> Iterator[str]:
    passages = _passages(prompt)[:CITED_PASSAGES]
    if not passages:
        while True:
            yield from FALLBACK_ANSWER.split()
    # Each round quotes the next few words of every passage, starting a passage over
    # once it is used up, and cites it after the quote.
    offsets = [0] * len(passages)
    while True:
        for i, (number, words) in enumerate(passages):
            if offsets[i] >= len(words):
                offsets[i] = 0
            quote = words[offsets[i] : offsets[i] + QUOTE_WORDS]
            offsets[i] += len(quote)
            quote[-1] = quote[-1].rstrip(_TRAILING_PUNCTUATION) or quote[-1]
            yield from quote
            yield f"[{number}]."


def answer_text(prompt: str, *, max_new_tokens: int, answer_tokens: int = DEFAULT_ANSWER_TOKENS) -> str:
    """The generated_text /generate returns for this prompt (return_full_text off)."""
    words = _answer_words(prompt)
    return "".join(" " + next(words) for _ in range(max(0, min(max_new_tokens, answer_tokens))))


@dataclasses.dataclass
class Plan:
    """One answer, decided before the first token is sent."""

    tokens: list[dict[str, Any]]
    finish_reason: str  # "eos_token" or "length"
    text: str

    @property
    def chat_finish_reason(self) -> str:
        return "length" if self.finish_reason == "length" else "stop"


def plan(prompt: str, *, max_new_tokens: int, answer_tokens: int, chat: bool) -> Plan:
    words = _answer_words(prompt)
    tokens: list[dict[str, Any]] = []
    text = ""
    finish_reason = "length"
    for i in range(max_new_tokens):
        if i == answer_tokens:
            tokens.append(_token(EOS_TOKEN_TEXT, special=True))
            finish_reason = "eos_token"
            break
        word = next(words)
        piece = word if chat and i == 0 else " " + word
        tokens.append(_token(piece))
        text += piece
    return Plan(tokens=tokens, finish_reason=finish_reason, text=text)


def chat_prompt(messages: list[Any]) -> str:
    """A generic chat template; only its word count and passages matter here."""
    lines = [
        f"<|{message.get('role', 'user')}|>\n{message.get('content') or ''}"
        for message in messages
        if isinstance(message, dict)
    ]
    lines.append("<|assistant|>\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------- JSON shapes


def _details(answer: Plan, **more: Any) -> dict[str, Any]:
    return {"finish_reason": answer.finish_reason, "generated_tokens": len(answer.tokens), "seed": None, **more}


def generate_output(answer: Plan, *, prefix: str, details: bool) -> dict[str, Any]:
    """``/generate``'s body; ``prefix`` is the prompt under return_full_text, else ""."""
    output: dict[str, Any] = {"generated_text": prefix + answer.text}
    if details:
        output["details"] = _details(answer, prefill=[], tokens=answer.tokens)
    return output


def generate_stream_event(
    answer: Plan, index: int, *, prefix: str, details: bool, input_tokens: int
) -> dict[str, Any]:
    """``/generate_stream``'s event for token ``index`` (from 1); the last one carries the
    text and, with ``details``, the details."""
    event: dict[str, Any] = {"index": index, "token": answer.tokens[index - 1], "generated_text": None, "details": None}
    if index == len(answer.tokens):
        event["generated_text"] = prefix + answer.text
        if details:
            event["details"] = _details(answer, input_length=input_tokens)
    return event


def _chat_envelope(kind: str, created: int) -> dict[str, Any]:
    return {
        "object": kind,
        "id": "",
        "created": created,
        "model": MODEL_ID,
        "system_fingerprint": f"{TGI_VERSION}-native",
    }


def chat_completion(answer: Plan, *, input_tokens: int) -> dict[str, Any]:
    return {
        **_chat_envelope("chat.completion", int(time.time())),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "logprobs": None,
                "finish_reason": answer.chat_finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": len(answer.tokens),
            "total_tokens": input_tokens + len(answer.tokens),
        },
    }


def chat_chunk(answer: Plan, index: int, *, created: int) -> dict[str, Any]:
    """The chat stream's chunk for token ``index`` (from 1)."""
    token = answer.tokens[index - 1]
    last = index == len(answer.tokens)
    return {
        **_chat_envelope("chat.completion.chunk", created),
        "choices": [
            {
                "index": 0,
                # TGI sends no content for special tokens (the end-of-sequence one).
                "delta": {"role": "assistant", "content": None if token["special"] else token["text"]},
                "logprobs": None,
                "finish_reason": answer.chat_finish_reason if last else None,
            }
        ],
        "usage": None,
    }
