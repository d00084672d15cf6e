"""Bad uploads get a clear 4xx JSON error naming the field, and leave nothing behind."""
import json

import pytest
from django.conf import settings

from apps.documents.models import Document

pytestmark = pytest.mark.stack


def _url(collection):
    return f"/collections/{collection['id']}/documents/"


def _error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def _nothing_written(collection):
    assert Document.objects.filter(collection_id=collection["id"]).count() == 0


def test_empty_body(client, collection, live_db):
    error = _error(client.post(_url(collection), json={}), 400)
    assert "text" in error["fields"]
    _nothing_written(collection)


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_or_blank_text(client, collection, live_db, text):
    error = _error(client.post(_url(collection), json={"text": text}), 400)
    assert "text" in error["fields"]
    _nothing_written(collection)


@pytest.mark.parametrize("metadata", [[1, 2], "a string", 3])
def test_metadata_that_is_not_an_object(client, collection, live_db, metadata):
    error = _error(client.post(_url(collection), json={"text": "ok", "metadata": metadata}), 400)
    assert "JSON object" in str(error["fields"]["metadata"])
    _nothing_written(collection)


@pytest.mark.parametrize("metadata", ["[1]", "{not json"])
def test_multipart_metadata_that_is_not_an_object(client, collection, live_db, metadata):
    response = client.post(_url(collection), files=[("files", ("a.txt", b"hello", "text/plain"))], data={"metadata": metadata})
    assert "metadata" in _error(response, 400)["fields"]
    _nothing_written(collection)


def test_oversize_text_is_413(client, collection, live_db):
    big = "x" * (settings.SLUICE_UPLOAD_MAX_BYTES + 1)
    error = _error(client.post(_url(collection), json={"text": big}), 413)
    assert "SLUICE_UPLOAD_MAX_BYTES" in error["message"]
    _nothing_written(collection)


def test_oversize_file_is_413(client, collection, live_db):
    big = b"y" * (settings.SLUICE_UPLOAD_MAX_BYTES + 1)
    error = _error(client.post(_url(collection), files=[("files", ("big.txt", big, "text/plain"))]), 413)
    assert "big.txt" in error["message"]
    _nothing_written(collection)


def test_too_many_files(client, collection, live_db):
    files = [("files", (f"f{i}.txt", f"file {i}".encode(), "text/plain")) for i in range(settings.SLUICE_UPLOAD_MAX_FILES + 1)]
    error = _error(client.post(_url(collection), files=files), 400)
    assert "files" in error["fields"]
    _nothing_written(collection)


def test_non_utf8_text_file_rejects_the_whole_upload(client, collection, live_db):
    files = [
        ("files", ("fine.txt", b"perfectly fine", "text/plain")),
        ("files", ("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "text/plain")),
    ]
    error = _error(client.post(_url(collection), files=files), 400)
    assert "latin1.txt" in str(error["fields"]["files"]) and "UTF-8" in str(error["fields"]["files"])
    _nothing_written(collection)


def test_unsupported_type_is_415_with_the_supported_list(client, collection, live_db):
    response = client.post(_url(collection), files=[("files", ("tool.exe", b"MZ\x90\x00binary", "application/x-msdownload"))])
    error = _error(response, 415)
    assert "tool.exe" in error["message"]
    assert ".pdf" in error["supported"] and "text/markdown" in error["supported"]
    _nothing_written(collection)


def test_malformed_json_body(client, collection, live_db):
    response = client.post(_url(collection), content=b'{"text": ', headers={"content-type": "application/json"})
    _error(response, 400)
    _nothing_written(collection)


def test_unknown_collection_is_404(client, live_db):
    response = client.post("/collections/999999999/documents/", json={"text": "hi"})
    assert _error(response, 404)["code"] == "not_found"


def test_other_users_collection_is_invisible(client, collection, live_db, stack):
    import httpx
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username="intruder-" + str(collection["id"]), password="intruder-pass-1")
    with httpx.Client(base_url=str(client.base_url), auth=("intruder-" + str(collection["id"]), "intruder-pass-1")) as other:
        assert other.get(f"/collections/{collection['id']}/").status_code == 404
        assert other.post(_url(collection), json={"text": "sneaky"}).status_code == 404
    _nothing_written(collection)


def test_anonymous_requests_are_refused(stack, collection):
    import httpx

    response = httpx.post(
        f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1/collections/", json={"name": "x"}
    )
    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_collection_name_must_be_unique_per_owner(client, collection):
    error = _error(client.post("/collections/", json={"name": collection["name"]}), 400)
    assert "name" in error["fields"]
    assert json.dumps(error)  # JSON all the way down
