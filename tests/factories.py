"""Test data builders: hand-made PDFs (no PDF writer library needed)."""
import zlib


def pdf_text_page(text: str, *, font_size: int = 12) -> bytes:
    """A page content stream that shows ``text`` in Helvetica (/F1)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"BT /F1 {font_size} Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")


def pdf_build(*, pages: list[bytes], compress: bool = False, title: str | None = None) -> bytes:
    """A minimal valid PDF by hand, one content stream per page, Helvetica as /F1."""
    streams = [_stream_object(body=zlib.compress(page) if compress else page, flate=compress) for page in pages]
    return _pdf_assemble(streams=streams, title=title)


def pdf_bomb_build(*, decompressed_size: int, first_page: bytes = b"BT /F1 12 Tf 72 720 Td (Hello world) Tj ET") -> bytes:
    """A one-page PDF whose content stream is small compressed but huge decompressed.

    Compressed incrementally so the test itself never holds the huge stream.
    """
    compressor = zlib.compressobj(9)
    body = compressor.compress(first_page + b"\n")
    block = b" " * (1 << 20)
    for _ in range(decompressed_size // len(block)):
        body += compressor.compress(block)
    body += compressor.flush()
    return _pdf_assemble(streams=[_stream_object(body=body, flate=True)])


def _stream_object(*, body: bytes, flate: bool) -> bytes:
    filters = " /Filter /FlateDecode" if flate else ""
    return f"<< /Length {len(body)}{filters} >>\nstream\n".encode() + body + b"\nendstream"


def _pdf_assemble(*, streams: list[bytes], title: str | None = None) -> bytes:
    """Number the objects and write the xref table of their byte offsets, as readers expect.

    Objects: 1 catalog, 2 page tree, 3 font, then a page and its content stream per
    page, then the optional /Info dictionary.
    """
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(streams)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(streams)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, stream in enumerate(streams):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(stream)
    trailer = f"/Size {len(objects) + 1} /Root 1 0 R"
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
        trailer += f" /Info {len(objects)} 0 R"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_offset = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< {trailer} >>\nstartxref\n{xref_offset}\n%%EOF\n".encode()
    return bytes(out)
