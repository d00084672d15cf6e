"""Tests for apps.documents.services.chunking: token limits, offsets, headings, overlap."""

import random

import pytest

from apps.documents.services.chunking import ChunkSpec, text_chunk
from apps.documents.services.tokenizer import MODEL_MAX_TOKENS, token_count

NESTED_DOC = """Preface text before any heading.

# Guide

Guide introduction.

## Install

Install with pip.

```
# comment
pip install x
```

### On Linux

Use the package manager.

## Usage

Call the API.

# Appendix

The end.
"""


def chunks_check(*, text: str, chunks: list[ChunkSpec], max_tokens: int) -> None:
    """The properties every chunking must have, whatever the input."""
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    previous_end = 0
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.token_count == token_count(text=chunk.text)
        assert chunk.token_count <= max_tokens
        # Nothing that the model would see is lost between chunks.
        if chunk.char_start > previous_end:
            assert token_count(text=text[previous_end : chunk.char_start]) == 0
        previous_end = max(previous_end, chunk.char_end)
    assert token_count(text=text[previous_end:]) == 0


def test_empty_text_has_no_chunks() -> None:
    assert text_chunk(text="") == []
    assert text_chunk(text=" \n\n\t ") == []


def test_heading_paths_follow_nested_headings() -> None:
    chunks = text_chunk(text=NESTED_DOC, max_tokens=16, overlap_tokens=0)
    chunks_check(text=NESTED_DOC, chunks=chunks, max_tokens=16)
    assert [(chunk.heading_path, chunk.text.split("\n")[0]) for chunk in chunks] == [
        ((), "Preface text before any heading."),
        (("Guide",), "# Guide"),
        (("Guide", "Install"), "```"),
        (("Guide", "Install", "On Linux"), "### On Linux"),
        (("Guide", "Usage"), "## Usage"),
        (("Appendix",), "# Appendix"),
    ]


def test_small_sections_share_a_chunk() -> None:
    # A new section only starts a chunk once the current one is a quarter full.
    assert token_count(text=NESTED_DOC) * 4 < 254
    chunks = text_chunk(text=NESTED_DOC, max_tokens=254)
    assert len(chunks) == 1
    assert chunks[0].heading_path == ()
    assert chunks[0].text == NESTED_DOC.strip()


def test_sibling_heading_starts_a_chunk_once_a_quarter_full() -> None:
    section = "word " * 20  # 20 tokens, over a quarter of 64
    text = f"# A\n\n{section}\n\n# B\n\n{section}\n\n## B1\n\nshort\n\n# C\n\nshort"
    chunks = text_chunk(text=text, max_tokens=64, overlap_tokens=0)
    chunks_check(text=text, chunks=chunks, max_tokens=64)
    assert [chunk.heading_path for chunk in chunks] == [("A",), ("B",), ("C",)]
    assert chunks[1].text.startswith("# B") and "## B1" in chunks[1].text


def test_heading_is_not_left_at_the_end_of_a_chunk() -> None:
    text = "\n\n".join(["word " * 30, "## Next", "word " * 30])
    chunks = text_chunk(text=text, max_tokens=40, overlap_tokens=0)
    assert [chunk.text.split("\n")[0] for chunk in chunks] == ["word " * 29 + "word", "## Next"]
    assert chunks[1].heading_path == ("Next",)


def test_paragraphs_are_kept_whole_where_they_fit() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta"]
    paragraphs = [" ".join(rng.choice(words) for _ in range(rng.randint(10, 60))) for _ in range(30)]
    text = "\n\n".join(paragraphs)
    chunks = text_chunk(text=text, max_tokens=100, overlap_tokens=10)
    chunks_check(text=text, chunks=chunks, max_tokens=100)
    assert "\n\n".join(chunk.text for chunk in chunks) == text  # no paragraph cut, none repeated
    # Greedy: a chunk ends only because the next paragraph did not fit.
    for chunk, after in zip(chunks, chunks[1:], strict=False):
        next_paragraph = after.text.split("\n\n")[0]
        assert chunk.token_count + token_count(text=next_paragraph) > 100


def test_long_paragraph_is_cut_at_sentences_with_overlap() -> None:
    text = " ".join(f"Sentence {i} has a few words in it." for i in range(60))
    chunks = text_chunk(text=text, max_tokens=64, overlap_tokens=8)
    chunks_check(text=text, chunks=chunks, max_tokens=64)
    assert len(chunks) > 3
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        assert chunk.char_start < previous.char_end  # starts inside the previous chunk
        overlap = text[chunk.char_start : previous.char_end]
        assert previous.text.endswith(overlap) and chunk.text.startswith(overlap)
        assert 0 < token_count(text=overlap) <= 8
        # The cut itself is at a sentence end.
        assert previous.text.endswith(".")


def test_long_sentence_is_cut_between_tokens_with_overlap() -> None:
    text = "https://example.com/" + "/".join(f"segment{i}" for i in range(400))
    chunks = text_chunk(text=text, max_tokens=50, overlap_tokens=10)
    chunks_check(text=text, chunks=chunks, max_tokens=50)
    assert len(chunks) > 5
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        overlap = text[chunk.char_start : previous.char_end]
        assert chunk.char_start < previous.char_end
        assert 0 < token_count(text=overlap) <= 10


def test_no_overlap_when_disabled() -> None:
    text = " ".join(f"Sentence {i} has a few words in it." for i in range(60))
    chunks = text_chunk(text=text, max_tokens=64, overlap_tokens=0)
    chunks_check(text=text, chunks=chunks, max_tokens=64)
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        assert chunk.char_start >= previous.char_end


def test_cjk_without_spaces_is_cut() -> None:
    text = "東京は日本の首都です" * 100
    chunks = text_chunk(text=text, max_tokens=32, overlap_tokens=4)
    chunks_check(text=text, chunks=chunks, max_tokens=32)
    assert len(chunks) > 10


def _random_text(*, rng: random.Random) -> str:
    """A document mixing everything that makes token counts hard to predict."""
    alphabet = "abcdefghijklmnopqrstuvwxyzäöüßéñçøåłžčřœ"
    words = ["the", "quick", "internationalization", "naïve", "Zürich", "co-operate", "e.g.", "U.S.A."]
    separators = [". ", "! ", "? ", "。", "\n", "\n\n", "\r\n\r\n", "   ", "\t"]
    separators += ["\u00a0", "\u200b", "\u2028", "\x1c", "\x00"]  # whitespace only to Python, or to neither
    pieces = [
        lambda: " ".join(rng.choice(words) for _ in range(rng.randint(1, 40))),
        lambda: "".join(rng.choice(alphabet) for _ in range(rng.randint(50, 400))),  # long words, no spaces
        lambda: "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(20, 600))),  # CJK
        lambda: "https://example.com/" + "/".join(f"p{rng.randint(0, 10**6)}?q={rng.random()}" for _ in range(80)),
        lambda: "".join(rng.choice("😀🎉🚀ØΩЖ") for _ in range(rng.randint(1, 100))),
        lambda: rng.choice(["# ", "## ", "### ", "###### "]) + "Heading " + str(rng.randint(0, 99)),
        lambda: rng.choice(separators),
        lambda: "```\n# comment\ncode()\n```",
        lambda: "".join(rng.choice("0123456789.,;:-_/") for _ in range(rng.randint(10, 300))),
        lambda: "x" * rng.randint(1000, 5000),  # longer than a tokenizer segment, no break anywhere
    ]
    return "".join(rng.choice(pieces)() + rng.choice([" ", "\n", "\n\n", "", ". "]) for _ in range(rng.randint(1, 120)))


@pytest.mark.parametrize("seed", range(30))
def test_random_text_never_exceeds_max_tokens(seed: int) -> None:
    rng = random.Random(seed)
    max_tokens = rng.choice([16, 17, 64, 200, MODEL_MAX_TOKENS - 2])
    overlap_tokens = rng.randrange(0, max_tokens // 2)
    text = _random_text(rng=rng)
    chunks = text_chunk(text=text, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    chunks_check(text=text, chunks=chunks, max_tokens=max_tokens)


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens", "bound"),
    [
        (MODEL_MAX_TOKENS - 1, 0, "254"),
        (15, 0, "16"),
        (200, -1, "0"),
        (200, 100, "100"),
        (17, 8, "8"),
    ],
)
def test_bad_parameters_are_rejected(max_tokens: int, overlap_tokens: int, bound: str) -> None:
    with pytest.raises(ValueError, match=bound):
        text_chunk(text="text", max_tokens=max_tokens, overlap_tokens=overlap_tokens)


def test_parameter_bounds_are_inclusive_where_documented() -> None:
    assert text_chunk(text="text", max_tokens=MODEL_MAX_TOKENS - 2, overlap_tokens=126)[0].token_count == 1
    assert text_chunk(text="text", max_tokens=16, overlap_tokens=7)[0].token_count == 1
