"""Request size limits on the real server: bodies over the JSON or upload cap get a JSON
413 before the body is read (declared or chunked), and Django never spools them."""
import socket

import pytest
from django.conf import settings

pytestmark = pytest.mark.stack


def _raw_request(head: str) -> bytes:
    """Send only the request head (a body is promised, never sent) and read the answer."""
    with socket.create_connection((settings.SLUICE_HOST, settings.SLUICE_WEB_PORT), timeout=10) as sock:
        sock.sendall(head.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(("content_type", "limit", "setting"), [
    ("application/json", "DATA_UPLOAD_MAX_MEMORY_SIZE", "SLUICE_JSON_MAX_BYTES"),
    ("multipart/form-data; boundary=x", "SLUICE_UPLOAD_MAX_REQUEST_BYTES", "SLUICE_UPLOAD_MAX_REQUEST_BYTES"),
])
def test_a_declared_oversize_body_is_refused_before_it_is_sent(stack, content_type, limit, setting):
    size = getattr(settings, limit) + 1
    answer = _raw_request(
        f"POST /api/v1/collections/1/documents/ HTTP/1.1\r\nHost: {settings.SLUICE_HOST}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {size}\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"code": "too_large"' in body and setting.encode() in body


def test_a_chunked_body_is_cut_off_at_the_limit(stack):
    """No Content-Length: the body is counted as it arrives."""
    block = b"x" * (1 << 20)
    blocks = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // len(block) + 2
    with socket.create_connection((settings.SLUICE_HOST, settings.SLUICE_WEB_PORT), timeout=10) as sock:
        sock.sendall(f"POST /api/v1/collections/1/documents/ HTTP/1.1\r\nHost: {settings.SLUICE_HOST}\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for _ in range(blocks):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before the whole body was sent
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"code": "too_large"' in body


def test_bodies_within_the_limits_pass(client, collection):
    response = client.post(f"/collections/{collection['id']}/documents/", json={"text": "small"})
    assert response.status_code == 202
