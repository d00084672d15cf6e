"""Turn an uploaded file's bytes into plain text for chunking.

Supported formats are plain text, Markdown, HTML and PDF. Every format comes out
as Markdown-flavoured text: paragraphs separated by blank lines and, where the
source has headings (Markdown, HTML), ``#`` heading lines, which is what
``chunking.text_chunk`` uses to attach a heading path to each chunk.

Uploads are untrusted, so parsing is bounded: the extracted text may not exceed
``max_text_chars``, a PDF may not have more than ``max_pdf_pages`` pages, and
pypdf's own decompression limits stay switched on. Its time is linear in the
input: no backtracking regex runs over a whole line, and html.parser's quadratic
handling of unfinished markup is replaced (see ``_HTMLParser``). Every failure a user can fix
raises ``ParseError`` or ``UnsupportedFormat`` with a message meant to be shown
to them as is.
"""

import codecs
import dataclasses
import io
import re
from collections.abc import Iterator

import pypdf
from bs4 import BeautifulSoup, CData, NavigableString, Tag
from bs4.builder import HTMLParserTreeBuilder
from bs4.builder._htmlparser import BeautifulSoupHTMLParser
from bs4.exceptions import ParserRejectedMarkup
from pypdf import PasswordType
from pypdf.errors import DependencyError

SUPPORTED_FORMATS: dict[str, list[str]] = {
    "text": [".txt", ".text", "text/plain"],
    "markdown": [".md", ".markdown", "text/markdown", "text/x-markdown"],
    "html": [".html", ".htm", "text/html", "application/xhtml+xml"],
    "pdf": [".pdf", "application/pdf"],
}

_FORMAT_BY_KEY = {key: fmt for fmt, keys in SUPPORTED_FORMATS.items() for key in keys}


def format_content_type(fmt: str) -> str:
    """The canonical content type of a supported format (``markdown`` → ``text/markdown``)."""
    return next(key for key in SUPPORTED_FORMATS[fmt] if "/" in key)


class UnsupportedFormat(Exception):
    """The upload is not in one of ``SUPPORTED_FORMATS``.

    ``supported`` lists every accepted extension and content type, sorted, so an
    API can return it to the client.
    """

    def __init__(self, received: str) -> None:
        self.received = received
        self.supported = sorted(_FORMAT_BY_KEY)
        super().__init__(
            f"Unsupported document format ({received}). "
            f"Supported extensions and content types: {', '.join(self.supported)}."
        )

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # Celery pickles exceptions; the default would pass the message back in
        # as ``received``.
        return (self.__class__, (self.received,))


class ParseError(Exception):
    """The upload is in a supported format but cannot be turned into text.

    The message says what is wrong and what the user can do about it.
    """


@dataclasses.dataclass(frozen=True)
class ParsedDocument:
    """The text of a document, with ``\n`` newlines, and its title if it has one."""

    text: str
    title: str | None
    format: str  # one of SUPPORTED_FORMATS' keys


def document_parse(
    *,
    data: bytes,
    filename: str | None = None,
    content_type: str | None = None,
    max_pdf_pages: int = 2000,
    max_text_chars: int = 5_000_000,
) -> ParsedDocument:
    """Detect the format of ``data`` and extract its text and title.

    The format is taken from ``content_type`` if it names a supported one, else
    from ``filename``'s extension, else sniffed from the bytes (PDF and HTML
    only); see ``document_format_detect``. Raises ``UnsupportedFormat`` when
    none of these gives a supported format, ``ParseError`` when the content
    cannot be read.
    """
    fmt = document_format_detect(data=data, filename=filename, content_type=content_type)
    name = f"'{filename}'" if filename else "The document"

    if fmt == "pdf":
        text, title = _pdf_parse(data=data, name=name, max_pdf_pages=max_pdf_pages, max_text_chars=max_text_chars)
    elif fmt == "html":
        text, title = _html_parse(data=data, name=name, content_type=content_type, max_text_chars=max_text_chars)
    else:
        text, title = _plain_parse(data=data, name=name, fmt=fmt, max_text_chars=max_text_chars)

    text = _text_clean(text=text)
    if not text.strip():
        raise ParseError(f"{name} contains no text to index. Upload a file with some text in it.")
    _text_limit_check(length=len(text), name=name, max_text_chars=max_text_chars)
    return ParsedDocument(text=text, title=title, format=fmt)


def document_format_detect(*, data: bytes, filename: str | None = None, content_type: str | None = None) -> str:
    """Return the format of an upload, one of ``SUPPORTED_FORMATS``' keys, without parsing it.

    Cheap enough to run on upload, to refuse unsupported files before queueing
    them. Raises ``UnsupportedFormat``.
    """
    # Parameters such as "; charset=utf-8" do not change the format.
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in _FORMAT_BY_KEY:
        return _FORMAT_BY_KEY[mime]

    if filename and "." in filename:
        extension = "." + filename.rsplit(".", 1)[1].lower()
        if extension in _FORMAT_BY_KEY:
            return _FORMAT_BY_KEY[extension]

    # Clients often send application/octet-stream and odd names, so fall back
    # to the two signatures that are unambiguous enough to trust.
    head = data[:1024].lstrip(codecs.BOM_UTF8).lstrip().lower()
    if head.startswith(b"%pdf-"):
        return "pdf"
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"

    raise UnsupportedFormat(
        (f"content type '{content_type}'" if content_type else "no content type")
        + (f", filename '{filename}'" if filename else ", no filename")
    )


def _text_limit_check(*, length: int, name: str, max_text_chars: int) -> None:
    if length > max_text_chars:
        raise ParseError(
            f"{name} has more than {max_text_chars:,} characters of text, the most one document may have. "
            "Split it into smaller documents and upload them separately."
        )


def _text_clean(*, text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # PostgreSQL text cannot hold NUL, and lone surrogates (which PDF text
    # extraction can produce) cannot be encoded as UTF-8 at all.
    text = text.replace("\x00", "")
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _bytes_decode(*, data: bytes, name: str, encoding: str = "utf-8") -> str:
    """Decode strictly: a wrong guess would index mojibake, which nobody can search."""
    offset = 0
    if data.startswith(codecs.BOM_UTF8):
        data, offset, encoding = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8), "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"{name} is not valid {encoding.upper()} text: the byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start + offset} cannot be decoded. Re-encode the file as UTF-8 and upload it again."
        ) from None


# A longer line is a paragraph, not a heading: real headings are short, and
# every chunk under a heading repeats its text in its heading path.
HEADING_MAX_CHARS = 1000
# Code fences: '#' lines inside them are comments, not headings.
_MARKDOWN_FENCE = re.compile(r" {0,3}(?:```|~~~)")


def _plain_parse(*, data: bytes, name: str, fmt: str, max_text_chars: int) -> tuple[str, str | None]:
    # A UTF-8 character is at most 4 bytes: anything longer is over the limit
    # whatever it decodes to, so do not spend memory decoding it.
    _text_limit_check(length=len(data) // 4, name=name, max_text_chars=max_text_chars)
    text = _bytes_decode(data=data, name=name).replace("\r\n", "\n").replace("\r", "\n")
    return text, (_markdown_title(text=text) if fmt == "markdown" else None)


def _markdown_title(*, text: str) -> str | None:
    in_fence = False
    for line in text.split("\n"):
        if _MARKDOWN_FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (heading := markdown_heading(line=line)) and heading[0] == 1:
            return heading[1]
    return None


def markdown_heading(*, line: str) -> tuple[int, str] | None:
    """The level and text of a Markdown ATX heading line (``"## Title ##"`` gives
    ``(2, "Title")``), or None when ``line`` is not one.

    A heading is 1 to 6 '#'s, blanks, then its text, less an optional closing run
    of blanks and '#'s. Parsed with str methods rather than a regex such as
    ``#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?``, which backtracks in time quadratic in the
    line (``"# a" + " " * n + "#b"``), and a line longer than HEADING_MAX_CHARS
    is never a heading.
    """
    line = line.rstrip()
    if len(line) > HEADING_MAX_CHARS:
        return None
    text = line.lstrip("#")
    level = len(line) - len(text)
    if not 1 <= level <= 6 or not text.startswith((" ", "\t")):
        return None
    text = text.lstrip(" \t")
    # The line ends in non-whitespace, so text is not empty and does not start
    # with a blank: a closing run of blanks and '#'s always leaves some text.
    body = text.rstrip("#")
    return level, (body if body.endswith((" ", "\t")) else text).strip()


# --- HTML -------------------------------------------------------------------

# Elements whose content is never part of the readable text. Beyond the usual
# script/style/head: <svg> holds drawing labels, <iframe> fallback markup, and
# a stray <title> outside <head> (read before this) would repeat the title.
_HTML_DROPPED = ("script", "style", "noscript", "template", "head", "title", "svg", "iframe")
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
        "tbody", "thead", "tfoot", "tr", "ul",
    }
)  # fmt: skip
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HTML_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_CONTENT_TYPE_CHARSET = re.compile(r"charset\s*=\s*[\"']?([a-zA-Z0-9_.:-]+)", re.IGNORECASE)
# A paragraph that would read as a Markdown heading must not become one.
_HEADING_LIKE = re.compile(r"#{1,6}[ \t]")
_WHITESPACE = re.compile(r"\s+")
# "&#" that does not start a character reference html.parser accepts: with
# convert_charrefs off, as Beautiful Soup runs it, one stops feed() there.
_HTML_BAD_CHARREF = re.compile(r"&#(?!(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F])")
_HTML_TAG_OPEN = re.compile(r"</?[a-zA-Z]")


class _HTMLParser(BeautifulSoupHTMLParser):
    """html.parser as Beautiful Soup drives it, but linear in the input whatever the Python release.

    Python's HTMLParser before the fix for CVE-2025-6069 (gh-135462, in the
    2025 security releases; 3.11.7 lacks it) handles markup left unfinished at
    the end of the input, such as a '<' with no '>' after it or '<!--' with no
    '-->', by emitting it as text up to the next '<' and scanning from there to
    the end again: time quadratic in the tail ("<p>x</p>" + "<meta " * 20000,
    120 KB, took 27 s). feed() stops at the first such construct; here, as in
    the fixed releases and in HTML5, that construct runs to the end of the input.
    """

    def close(self) -> None:
        rest = self.rawdata
        if rest.startswith("<") and not self.cdata_elem:
            self.rawdata = ""
            self._unfinished_handle(rest=rest)
        super().close()

    def _unfinished_handle(self, *, rest: str) -> None:
        """Handle the construct that starts ``rest`` and is not finished by the end of the input."""
        if len(rest) == 1 or rest == "</":
            self.handle_data(rest)
        elif _HTML_TAG_OPEN.match(rest):
            pass  # an unfinished start or end tag is dropped
        elif rest.startswith("<!--"):
            end = len(rest)
            for suffix in ("--!", "--", "-"):
                if rest.endswith(suffix, 4):
                    end -= len(suffix)
                    break
            self.handle_comment(rest[4:end])
        elif rest.startswith("<![CDATA["):
            self.unknown_decl(rest[3:])
        elif rest[:9].lower() == "<!doctype":
            self.handle_decl(rest[2:])
        elif rest.startswith(("<!", "</")):
            self.handle_comment(rest[2:])  # a bogus comment
        elif rest.startswith("<?"):
            self.handle_pi(rest[2:])


class _HTMLTreeBuilder(HTMLParserTreeBuilder):
    def feed(self, markup: str) -> None:
        # Only an unfinished construct may stop feed() (see _HTMLParser), so
        # make each '&#' that starts no character reference plain text.
        super().feed(_HTML_BAD_CHARREF.sub("&amp;#", markup), _parser_class=_HTMLParser)


def _html_parse(*, data: bytes, name: str, content_type: str | None, max_text_chars: int) -> tuple[str, str | None]:
    text = _bytes_decode(data=data, name=name, encoding=_html_charset(data=data, content_type=content_type))
    try:
        return _html_text(soup=BeautifulSoup(text, builder=_HTMLTreeBuilder()))
    except ParserRejectedMarkup as exc:
        # html.parser rejects a few malformed declarations, such as "<![foo[".
        detail = str(exc).strip().rsplit("\n", 1)[-1].strip()[:200]
        raise ParseError(
            f"{name} has HTML markup that cannot be parsed ({detail}). Fix or remove it and upload the file again."
        ) from None
    except RecursionError:
        raise ParseError(
            f"{name} has HTML elements nested too deeply to read. Simplify the document and upload it again."
        ) from None


def _html_text(*, soup: BeautifulSoup) -> tuple[str, str | None]:
    title = _html_title(soup=soup)
    for tag in soup.find_all(_HTML_DROPPED):
        if not tag.decomposed:
            tag.decompose()
    for tag in soup.find_all(_html_is_hidden):
        if not tag.decomposed:
            tag.decompose()

    paragraphs = list(_html_paragraphs(root=soup))
    if title is None:
        title = next((p[2:] for p in paragraphs if p.startswith("# ")), None)
    return "\n\n".join(paragraphs), title


def _html_charset(*, data: bytes, content_type: str | None) -> str:
    """The declared charset (HTTP header first, then <meta>), if Python knows it, else UTF-8."""
    declared, where = None, ""
    if content_type and (match := _CONTENT_TYPE_CHARSET.search(content_type)):
        declared, where = match.group(1), "the Content-Type header"
    elif match := _HTML_CHARSET.search(data[:4096]):
        declared, where = match.group(1).decode("ascii"), "<meta charset>"
    if not declared:
        return "utf-8"
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        return "utf-8"  # Browsers ignore unknown labels too.
    try:
        b"a".decode(name)  # (an empty input short-circuits before the check)
    except UnicodeError:
        pass  # a real character set in which "a" alone is incomplete (UTF-16, ...)
    except LookupError:
        # Python knows the name, but as a bytes or text transform (rot13, hex, base64,
        # zlib), not a character set: decoding with it would raise outside ParseError.
        raise ParseError(
            f"unknown character set {declared!r} in {where}: it is not a text encoding. Declare the "
            "file's real character set (e.g. utf-8) or remove the declaration, then upload it again."
        ) from None
    return name


def _html_title(*, soup: BeautifulSoup) -> str | None:
    """The text of the first <title> outside <svg> (where titles are tooltips), in document order.

    A walk that skips <svg> subtrees, rather than find_all("title") and a
    find_parent("svg") for each, which is quadratic in nested titles.
    """
    stack: list[Tag] = [soup]
    while stack:
        tag = stack.pop()
        if tag.name == "title":
            return _WHITESPACE.sub(" ", tag.get_text()).strip() or None
        if tag.name != "svg":
            stack.extend(child for child in reversed(tag.contents) if isinstance(child, Tag))
    return None


def _html_is_hidden(tag: Tag) -> bool:
    if tag.has_attr("hidden") or str(tag.get("aria-hidden", "")).strip().lower() == "true":
        return True
    style = _WHITESPACE.sub("", str(tag.get("style", ""))).lower()
    return "display:none" in style or "visibility:hidden" in style


def _html_paragraphs(*, root: Tag) -> Iterator[str]:
    """Yield the readable paragraphs under ``root``, headings as Markdown lines.

    Walks the tree with an explicit stack rather than recursion: nesting depth
    is up to the uploader, and Python's recursion limit is not.
    """
    inline: list[str] = []  # strings of the paragraph being built
    inline_has_text = False
    heading_level = 0  # > 0 while inside h1..h6
    stack: list[tuple[Tag | NavigableString, bool]] = [(root, False)]

    while stack:
        node, leaving = stack.pop()
        if isinstance(node, NavigableString):
            # Comments, doctypes and processing instructions are strings too.
            if type(node) is NavigableString or isinstance(node, CData):
                inline.append(node)
                inline_has_text = inline_has_text or not node.isspace()
            continue

        is_block = node.name in _HTML_BLOCKS
        if is_block and inline_has_text:
            yield _html_paragraph_render(strings=inline, heading_level=heading_level)
        if is_block:
            inline, inline_has_text = [], False
        if leaving:
            if node.name in _HTML_HEADINGS:
                heading_level = 0
            continue

        if node.name == "pre":
            if code := _html_pre_text(tag=node):
                yield code
            continue
        if node.name in _HTML_HEADINGS:
            heading_level = _HTML_HEADINGS[node.name]
        elif node.name in ("td", "th") and inline_has_text:
            # Cells share their row's paragraph; keep their texts apart.
            inline.append(" | ")
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))

    if inline_has_text:
        yield _html_paragraph_render(strings=inline, heading_level=heading_level)


def _html_paragraph_render(*, strings: list[str], heading_level: int) -> str:
    paragraph = _WHITESPACE.sub(" ", "".join(strings)).strip()
    if heading_level:
        return "#" * heading_level + " " + paragraph
    # Text that happens to start like a heading must not become one downstream.
    return "\\" + paragraph if _HEADING_LIKE.match(paragraph) else paragraph


def _html_pre_text(*, tag: Tag) -> str:
    """Preformatted text keeps its lines, fenced so '#' comments are not read as headings."""
    lines = [line.rstrip() for line in tag.get_text().replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    code = "\n".join(lines).strip("\n")
    return f"```\n{code}\n```" if code.strip() else ""


# --- PDF --------------------------------------------------------------------


def _pdf_parse(*, data: bytes, name: str, max_pdf_pages: int, max_text_chars: int) -> tuple[str, str | None]:
    # pypdf has no single exception type for malformed input (it raises
    # PdfReadError, but also KeyError, ValueError, RecursionError, ...), so
    # anything it raises means "cannot read this file".
    try:
        # pypdf's default Configuration bounds how far a stream may decompress
        # (zip-bomb-like PDFs), how much work parsing a content stream may take,
        # page tree size and more. Pin it, so limits loosened or switched off
        # (0) elsewhere in the process never apply to untrusted uploads.
        with pypdf.apply_configuration(pypdf.Configuration()):
            return _pdf_extract(data=data, name=name, max_pdf_pages=max_pdf_pages, max_text_chars=max_text_chars)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError(
            f"{name} has PDF objects nested too deeply to read. Re-save or re-export it as PDF and upload it again."
        ) from None
    except DependencyError as exc:
        # Raised for AES encryption when the optional cryptography package is
        # not installed (it is not, here).
        raise ParseError(
            f"{name} uses a PDF feature this server cannot read ({exc}). "
            "If the PDF is encrypted or password-protected, remove the protection and upload it again."
        ) from exc
    except Exception as exc:
        detail = str(exc)[:200] or type(exc).__name__
        raise ParseError(
            f"Could not read PDF: {detail}. {name} may be damaged or not a PDF; "
            "re-save or re-export it as PDF and upload it again."
        ) from exc


def _pdf_extract(*, data: bytes, name: str, max_pdf_pages: int, max_text_chars: int) -> tuple[str, str | None]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    # pypdf has already tried the empty password; many PDFs are "encrypted"
    # only to restrict printing or copying and open without one.
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise ParseError(f"{name} is a password-protected PDF. Remove the password protection and upload it again.")

    page_total = len(reader.pages)
    if page_total > max_pdf_pages:
        raise ParseError(
            f"{name} has {page_total:,} pages; at most {max_pdf_pages:,} pages are supported. "
            "Split it into smaller PDFs and upload them separately."
        )

    pages: list[str] = []
    length = 0
    for page in reader.pages:
        page_text = page.extract_text().strip()
        if page_text:
            pages.append(page_text)
            length += len(page_text) + 2
            # Check as we go: a small PDF can expand into far more text than
            # we would ever index, and there is no point extracting the rest.
            _text_limit_check(length=length - 2, name=name, max_text_chars=max_text_chars)

    if not pages:
        raise ParseError(
            f"{name} contains no extractable text. It may be a scanned image; "
            "OCR is not supported, so upload a PDF with a text layer or the text itself."
        )
    return "\n\n".join(pages), _pdf_title(reader=reader)


def _pdf_title(*, reader: pypdf.PdfReader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:
        # Broken metadata should not cost us the text we already have.
        return None
    if not title:
        return None
    return str(title).strip() or None
