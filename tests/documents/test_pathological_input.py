"""Parsing and chunking stay linear in the input on pathological uploads.

Most inputs here took the code before minutes to hours (backtracking regexes,
html.parser rescanning unfinished markup, a quadratic <title> lookup); the rest
are their linear neighbours. The code now takes well under the bounds, which
leave room for a loaded 2-core CI machine, and a regression to quadratic time
overshoots them by far: at these sizes that is minutes, not seconds.
"""

import io
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from pypdf import PdfWriter

from apps.documents.services import parsing
from apps.documents.services.chunking import ChunkSpec, text_chunk
from apps.documents.services.parsing import HEADING_MAX_CHARS, ParseError, document_parse
from apps.documents.services.tokenizer import embedding_tokenizer
from tests.documents.test_chunking import chunks_check

MB = 1_000_000
# Seconds. On a busy 2-core machine the code takes 0.3 to 0.9 s on 1 MB of text,
# and 1.5 to 3 s on 100,000 HTML elements, which Beautiful Soup builds one by one.
BOUND = 10.0
TREE_BOUND = 20.0

T = TypeVar("T")


@pytest.fixture(scope="module", autouse=True)
def tokenizer_loaded() -> None:
    embedding_tokenizer()  # loading it is not what is timed


def timed(function: Callable[[], T], *, bound: float = BOUND) -> T:
    start = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - start
    assert elapsed < bound, f"took {elapsed:.1f} s, more than {bound} s"
    return result


def chunk(text: str) -> list[ChunkSpec]:
    chunks = timed(lambda: text_chunk(text=text))
    assert chunks
    chunks_check(text=text, chunks=chunks, max_tokens=200)
    return chunks


# --- chunking -----------------------------------------------------------------------


def test_closing_sequence_lookalike_of_1mb_is_a_paragraph() -> None:
    # "(.+?)(?:[ \t]+#+)?" tried every split of the spaces: 0.56 s at 8 KB, hours at 1 MB.
    text = "# a" + " " * (MB - 5) + "#b"
    chunks = chunk(text)
    assert [(c.text, c.heading_path) for c in chunks] == [(text, ())]  # too long to be a heading


@pytest.mark.parametrize(
    "line",
    [
        "# a" + " " * (MB // 2) + "#" * (MB // 2) + "b",
        "# a" + " \t" * (MB // 2) + "#b",
        "# a" + " #" * (MB // 2) + "b",
        "#" * MB + " title",
        "# " + "#" * MB + " title",
    ],
    ids=["spaces-then-hashes", "blanks", "blank-hash-pairs", "hashes-before-title", "heading-of-hashes"],
)
def test_long_heading_lookalikes(line: str) -> None:
    chunks = chunk(line)
    assert all(c.heading_path == () for c in chunks)


@pytest.mark.parametrize(
    "line",
    [
        "x" + " " * MB + "y",
        "." * MB,
        "a" + "." * MB + "x",
        "!" * (MB // 2) + '"' * (MB // 2) + "x",
        "…" * (MB // 3),
        "。" * (MB // 3),
        "a" * MB,
        "word" * (MB // 4),
        "a\n" + " \t" * (MB // 2) + "b",
    ],
    ids=[
        "spaces", "dots", "dots-inside-a-word", "marks-then-quotes", "ellipses", "cjk-stops", "one-letter", "one-word",
        "blank-lines",
    ],
)
def test_long_lines_chunk_in_linear_time(line: str) -> None:
    # A run of sentence marks not followed by whitespace was rescanned from
    # each of its positions: 2.3 s at 16 KB of ".".
    chunk(line)


def test_heading_up_to_the_limit_is_still_a_heading() -> None:
    title = "a" + " " * (HEADING_MAX_CHARS - 5) + "#b"
    assert len("# " + title) == HEADING_MAX_CHARS
    chunks = chunk(f"# {title}\n\nBody text.")
    assert chunks[0].heading_path == (title,)
    long_title = title + "c"
    assert chunk(f"# {long_title}\n\nBody text.")[0].heading_path == ()


# --- Markdown title -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "title"),
    [
        ("# a" + " " * (MB - 5) + "#b", None),
        ("#" * MB + " title", None),
        ("# a" + " " * (MB // 2) + "#" * (MB // 2) + "b", None),
        ("# " + "." * MB + "\n\n# Short title ##", "Short title"),
    ],
    ids=["closing-lookalike", "hashes-before-title", "spaces-then-hashes", "long-line-then-title"],
)
def test_markdown_title_of_long_lines(source: str, title: str | None) -> None:
    parsed = timed(lambda: document_parse(data=source.encode(), filename="notes.md"))
    assert parsed.title == title
    assert parsed.text == source


# --- HTML ---------------------------------------------------------------------------


def html_parse(data: str, *, bound: float = BOUND) -> parsing.ParsedDocument:
    return timed(lambda: document_parse(data=data.encode(), filename="page.html"), bound=bound)


def test_html_nested_100000_deep() -> None:
    depth = 100_000
    assert html_parse("<div>" * depth + "deep" + "</div>" * depth, bound=TREE_BOUND).text == "deep"
    assert html_parse("<b>" * depth + "deep", bound=TREE_BOUND).text == "deep"  # never closed


@pytest.mark.parametrize(
    "tail",
    [
        "<meta " * (MB // 6),
        "<a" * (MB // 2),
        "</" * (MB // 2),
        "<!" * (MB // 2),
        "<?" * (MB // 2),
        "<!--x>" * (MB // 6),
        "<![CDATA[>" * (MB // 10),
        "<a b='" * (MB // 12) + "'" * (MB // 2),
        "&#<a" * (MB // 4) + ";",
    ],
    ids=[
        "meta", "tag-opens", "end-tag-opens", "declarations", "instructions", "comments", "cdata", "quotes",
        "bad-charrefs",
    ],
)
def test_html_unfinished_markup_runs_to_the_end(tail: str) -> None:
    # html.parser in Python before 3.11.14 rescanned to the end of the input
    # from each unfinished construct: 27 s for 120 KB of "<meta ".
    assert html_parse("<p>Kept</p>" + tail).text.split("\n\n")[0] == "Kept"


def test_html_unfinished_markup_at_the_end_is_dropped_like_html5_says() -> None:
    assert html_parse("<p>Hello</p><!-- never closed <p>hidden</p>").text == "Hello"
    assert html_parse("<p>Hello <b class='x").text == "Hello"
    assert html_parse("<p>Hello</p><").text == "Hello\n\n<"


def test_html_bad_charref_does_not_turn_markup_into_text() -> None:
    assert html_parse("<p>a &#x</p><p>b</p>").text == "a &#x\n\nb"


def test_html_title_inside_many_nested_svg_titles() -> None:
    # find_parent("svg") for each <title> was quadratic: 44 s for 20,000.
    parsed = html_parse("<svg>" + "<title>tip" * 100_000 + "</svg><title>Real</title><p>Body</p>", bound=TREE_BOUND)
    assert (parsed.title, parsed.text) == ("Real", "Body")


def test_html_the_parser_rejects_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="page.html' has HTML markup that cannot be parsed .*foo"):
        document_parse(data=b"<p>x</p><![foo[ bar ]]>", filename="page.html")


# --- PDF ----------------------------------------------------------------------------


def blank_pdf(*, pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=72, height=72)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_pdf_of_thousands_of_empty_pages() -> None:
    data = blank_pdf(pages=2000)
    with pytest.raises(ParseError, match="no extractable text"):
        timed(lambda: document_parse(data=data, filename="empty.pdf", max_pdf_pages=2000))


def test_pdf_over_the_page_limit_is_refused_before_extraction() -> None:
    data = blank_pdf(pages=10_000)
    with pytest.raises(ParseError, match="10,000 pages; at most 2,000"):
        timed(lambda: document_parse(data=data, filename="empty.pdf", max_pdf_pages=2000))


@pytest.mark.parametrize(
    ("step", "data", "filename"),
    [("_html_text", b"<p>x</p>", "page.html"), ("_pdf_extract", b"%PDF-1.7\n", "deep.pdf")],
)
def test_recursion_error_is_a_parse_error(
    monkeypatch: pytest.MonkeyPatch, step: str, data: bytes, filename: str
) -> None:
    def too_deep(**_: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(parsing, step, too_deep)
    with pytest.raises(ParseError, match=f"'{filename}' has .* nested too deeply"):
        document_parse(data=data, filename=filename)
