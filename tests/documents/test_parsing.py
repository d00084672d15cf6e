"""Tests for apps.documents.services.parsing: format detection, text extraction, limits."""

import codecs
import io
import pickle

import pytest
from pypdf import PdfReader, PdfWriter

from apps.documents.services.parsing import (
    SUPPORTED_FORMATS,
    ParsedDocument,
    ParseError,
    UnsupportedFormat,
    document_parse,
)
from tests.factories import pdf_bomb_build, pdf_build

HELLO_PAGE = b"BT /F1 12 Tf 72 720 Td (Hello world) Tj ET"


# --- format detection ---------------------------------------------------------


def test_format_from_content_type_ignores_parameters() -> None:
    parsed = document_parse(data=b"# Title\n\nBody", filename="notes.txt", content_type="text/markdown; charset=utf-8")
    assert parsed.format == "markdown"


def test_format_from_extension_when_content_type_is_generic() -> None:
    parsed = document_parse(data=b"<p>Hi</p>", filename="Page.HTM", content_type="application/octet-stream")
    assert parsed == ParsedDocument(text="Hi", title=None, format="html")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (pdf_build(pages=[HELLO_PAGE]), "pdf"),
        (b"  <!DOCTYPE html><html><p>Hi</p></html>", "html"),
        (b"<html><p>Hi</p>", "html"),
    ],
)
def test_format_sniffed_when_nothing_else_says(data: bytes, expected: str) -> None:
    assert document_parse(data=data, filename="upload").format == expected


def test_unsupported_format_names_what_was_received_and_what_is_supported() -> None:
    with pytest.raises(UnsupportedFormat) as excinfo:
        document_parse(data=b"\x89PNG\r\n", filename="photo.png", content_type="image/png")
    error = excinfo.value
    assert "image/png" in str(error) and "photo.png" in str(error)
    expected = sorted(key for keys in SUPPORTED_FORMATS.values() for key in keys)
    assert error.supported == expected
    assert ".pdf" in str(error) and "text/markdown" in str(error)


def test_unsupported_format_survives_pickling() -> None:
    # Celery pickles exceptions raised in tasks.
    error = pickle.loads(pickle.dumps(UnsupportedFormat("filename 'a.exe'")))
    assert error.received == "filename 'a.exe'" and error.supported and "a.exe" in str(error)


# --- text and markdown ----------------------------------------------------------


def test_text_strips_bom_and_normalises_newlines() -> None:
    parsed = document_parse(data=codecs.BOM_UTF8 + "caf\u00e9\r\nline\rend".encode(), filename="a.txt")
    assert parsed == ParsedDocument(text="caf\u00e9\nline\nend", title=None, format="text")


def test_text_that_is_not_utf8_names_the_offset() -> None:
    with pytest.raises(ParseError) as excinfo:
        document_parse(data="ok caf\u00e9".encode("latin-1"), filename="a.txt")
    message = str(excinfo.value)
    assert "offset 6" in message and "UTF-8" in message and "'a.txt'" in message


def test_text_offset_counts_a_stripped_bom() -> None:
    with pytest.raises(ParseError, match="offset 5"):
        document_parse(data=codecs.BOM_UTF8 + b"ab\xff", filename="a.txt")


@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n "])
def test_empty_text_is_rejected(data: bytes) -> None:
    with pytest.raises(ParseError, match="contains no text"):
        document_parse(data=data, filename="a.md")


def test_markdown_is_kept_as_is_and_titled_by_first_h1() -> None:
    source = "Preface\n\n```\n# a comment, not a heading\n```\n\n## Sub\n\n# The Title ##\n\nBody\n\n# Later\n"
    parsed = document_parse(data=source.encode(), filename="doc.markdown")
    assert parsed.text == source
    assert parsed.title == "The Title"


def test_markdown_without_h1_has_no_title() -> None:
    assert document_parse(data=b"## Only a sub\n\ntext", filename="a.md").title is None


def test_text_longer_than_limit_is_rejected() -> None:
    with pytest.raises(ParseError, match="more than 10 characters"):
        document_parse(data=b"x" * 11, filename="a.txt", max_text_chars=10)
    assert document_parse(data=b"x" * 10, filename="a.txt", max_text_chars=10).text == "x" * 10


def test_nul_characters_are_removed() -> None:
    # PostgreSQL text columns cannot store NUL.
    assert document_parse(data=b"a\x00b", filename="a.txt").text == "ab"


# --- HTML -------------------------------------------------------------------------

HTML_PAGE = b"""<!DOCTYPE html>
<html><head><title> The   Page </title><style>p { color: red }</style>
<script>var secret = 1;</script><meta name="x" content="head text"></head>
<body>
<h1>Main heading</h1>
<p>Hello   <b>bold</b>
   world.</p>
<div hidden>hidden attribute</div>
<div aria-hidden="true">aria hidden</div>
<p style="display: none">display none</p>
<span style="color: red; VISIBILITY : hidden">visibility hidden</span>
<noscript>enable js</noscript><template><p>template</p></template>
<h3>Deep   section</h3>
<ul><li>one</li><li>two</li></ul>
<table><tr><td>a</td><td>b</td></tr></table>
line one<br>line two
<p># not a heading</p>
</body></html>
"""


def test_html_text_keeps_readable_blocks_and_headings() -> None:
    parsed = document_parse(data=HTML_PAGE, filename="page.html")
    assert parsed.title == "The Page"
    assert parsed.format == "html"
    assert parsed.text.split("\n\n") == [
        "# Main heading",
        "Hello bold world.",
        "### Deep section",
        "one",
        "two",
        "a | b",
        "line one",
        "line two",
        "\\# not a heading",
    ]


def test_html_drops_hidden_and_non_content_elements() -> None:
    text = document_parse(data=HTML_PAGE, filename="page.html").text
    for hidden in ("secret", "color", "head text", "hidden", "display none", "enable js", "template"):
        assert hidden not in text


def test_html_title_falls_back_to_first_h1() -> None:
    data = b"<body><h2>Sub</h2><h1>First <i>one</i></h1><h1>Second</h1></body>"
    parsed = document_parse(data=data, filename="a.html")
    assert parsed.title == "First one"


def test_html_uses_declared_charset() -> None:
    meta = '<html><head><meta charset="iso-8859-1"></head><body><p>caf\u00e9</p></body></html>'.encode("latin-1")
    assert document_parse(data=meta, filename="a.html").text == "caf\u00e9"
    header = "<p>caf\u00e9</p>".encode("cp1252")
    assert document_parse(data=header, content_type="text/html; charset=windows-1252").text == "caf\u00e9"


def test_html_that_is_not_utf8_names_the_offset() -> None:
    with pytest.raises(ParseError, match="offset 3.*UTF-8"):
        document_parse(data="<p>\u00e9</p>".encode("latin-1"), filename="a.html")


def test_html_without_text_is_rejected() -> None:
    with pytest.raises(ParseError, match="contains no text"):
        document_parse(data=b"<html><head><title>T</title></head><body><script>x()</script></body>", filename="a.html")


def test_html_survives_deep_nesting() -> None:
    data = b"<div>" * 5000 + b"deep" + b"</div>" * 5000
    assert document_parse(data=data, filename="a.html").text == "deep"


# --- PDF ----------------------------------------------------------------------------


def test_pdf_text_and_title_are_extracted() -> None:
    data = pdf_build(pages=[HELLO_PAGE, b"BT /F1 12 Tf 72 720 Td (Second page) Tj ET"], title="Greeting")
    parsed = document_parse(data=data, filename="hello.pdf")
    assert parsed == ParsedDocument(text="Hello world\n\nSecond page", title="Greeting", format="pdf")


def test_pdf_compressed_content_is_extracted() -> None:
    parsed = document_parse(data=pdf_build(pages=[HELLO_PAGE], compress=True), content_type="application/pdf")
    assert parsed.text == "Hello world" and parsed.title is None


def test_malformed_pdf_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="(?i)could not read PDF"):
        document_parse(data=b"%PDF-1.4 garbage", filename="broken.pdf")


def test_pdf_with_too_many_pages_is_rejected() -> None:
    with pytest.raises(ParseError, match="at most 2 pages"):
        document_parse(data=pdf_build(pages=[HELLO_PAGE] * 3), filename="long.pdf", max_pdf_pages=2)


def test_pdf_without_text_suggests_it_is_scanned() -> None:
    with pytest.raises(ParseError, match="scanned image.*OCR is not supported"):
        document_parse(data=pdf_build(pages=[b"0 0 m 100 100 l S"]), filename="scan.pdf")


def test_pdf_expanding_past_the_text_limit_is_rejected() -> None:
    # ~40 bytes compressed per 100 kB of text.
    page = b"BT /F1 12 Tf 72 720 Td (" + b"A" * 200_000 + b") Tj ET"
    data = pdf_build(pages=[page], compress=True)
    assert len(data) < 2_000
    with pytest.raises(ParseError, match="more than 10,000 characters"):
        document_parse(data=data, filename="bomb.pdf", max_text_chars=10_000)


def test_pdf_stream_decompressing_past_pypdfs_limit_is_rejected() -> None:
    # pypdf stops inflating a stream at 75 MB by default; the parser must keep
    # that limit on and report it as a ParseError rather than run out of memory.
    data = pdf_bomb_build(decompressed_size=100 * 1024 * 1024)
    assert len(data) < 200_000
    with pytest.raises(ParseError, match="(?i)could not read PDF"):
        document_parse(data=data, filename="bomb.pdf")


def _pdf_encrypt(*, data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_is_rejected() -> None:
    data = _pdf_encrypt(data=pdf_build(pages=[HELLO_PAGE]), user_password="secret")
    with pytest.raises(ParseError, match="password"):
        document_parse(data=data, filename="locked.pdf")


def test_pdf_encrypted_with_empty_user_password_opens() -> None:
    data = _pdf_encrypt(data=pdf_build(pages=[HELLO_PAGE]), user_password="")
    assert document_parse(data=data, filename="restricted.pdf").text == "Hello world"


@pytest.mark.parametrize("charset", ["rot13", "hex", "base64", "zlib"])
def test_html_charset_that_is_not_a_text_encoding_is_a_parse_error(charset) -> None:
    # Python knows these names as transforms, not character sets: decoding with them used
    # to raise LookupError outside ParseError and leave the document in `parsing` forever.
    data = f'<html><head><meta charset="{charset}"></head><body><p>hello</p></body></html>'.encode()
    with pytest.raises(ParseError, match=f"unknown character set '{charset}' in <meta charset>"):
        document_parse(data=data, filename="a.html")
    with pytest.raises(ParseError, match="in the Content-Type header"):
        document_parse(data=b"<p>hello</p>", content_type=f"text/html; charset={charset}")


def test_html_unknown_charset_label_falls_back_to_utf8() -> None:
    data = '<html><head><meta charset="no-such-charset"></head><body><p>caf\u00e9</p></body></html>'.encode()
    assert document_parse(data=data, filename="a.html").text == "caf\u00e9"
