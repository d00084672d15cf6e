"""A collection's vectors belong to one model (docs/ingestion.md, "Encoders"): the real
stack refuses to mix or compare models with a 409, an in-flight document whose collection
changed model fails with the remedy, and ``collection_reembed`` moves a collection over.

The test stack embeds with the ``hash`` backend; a collection "of another model" is one
whose recorded model is changed in the database, as after SLUICE_EMBEDDING_BACKEND changed."""
import numpy as np
import pytest
from django.core.management import call_command

from apps.documents.models import Chunk, Collection, Document
from apps.documents.services.embedding import HashEmbedder
from apps.documents.services.ingestion import UploadItem, documents_upload
from tests.helpers import upload_final, wait_document

pytestmark = pytest.mark.stack

INT8 = "sentence-transformers/all-MiniLM-L6-v2+int8"


def _record_model(collection: dict, model: str) -> None:
    Collection.objects.filter(pk=collection["id"]).update(embedding_model=model)


def test_collections_record_the_model_and_documents_the_encoder(client, collection, live_db):
    assert collection["embedding_model"] == "hash-384" and collection["embedding_dim"] == 384
    done = upload_final(client, collection, json={"title": "Kilns", "text": "A kiln fires clay into pottery."})
    assert done["status"] == "ready" and done["embedded_by"] == "hash-384"


def test_another_models_collection_is_refused_with_409_and_the_remedy(client, collection, live_db):
    ready = upload_final(client, collection, json={"title": "Looms", "text": "A loom weaves thread into cloth."})
    _record_model(collection, INT8)

    upload = client.post(f"/collections/{collection['id']}/documents/", json={"text": "Spindles spin yarn."})
    search = client.post("/search/", json={"collection": collection["id"], "query": "weaving cloth"})
    query = client.post("/query/", json={"collection": collection["id"], "query": "what does a loom do?"})
    reindex = client.post(f"/documents/{ready['id']}/reindex/")
    for response in (upload, search, query, reindex):
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "embedding_model_mismatch"
        assert error["collection_model"] == INT8 and error["configured_model"] == "hash-384"
        assert f"collection_reembed {collection['id']}" in error["message"]
        assert "SLUICE_EMBEDDING_BACKEND to openvino-int8" in error["message"]
    assert Document.objects.filter(collection_id=collection["id"]).count() == 1  # nothing stored
    # A metadata-only change embeds nothing: still allowed.
    assert client.patch(f"/documents/{ready['id']}/", json={"title": "Looms (new)"}).status_code == 200


def test_an_in_flight_document_of_a_collection_that_changed_model_fails_with_the_remedy(client, collection, live_db):
    _record_model(collection, INT8)
    [(document, created)] = documents_upload(
        collection=Collection.objects.get(pk=collection["id"]),
        items=[UploadItem(data=b"Anvils take the blows of a hammer.", format="text", title="Anvils")],
    )
    assert created
    done = wait_document(client, document.pk)
    assert done["status"] == "failed"
    assert "embedding_model_mismatch" not in done["error"] and INT8 in done["error"]
    assert f"collection_reembed {collection['id']}" in done["error"]
    assert not Chunk.objects.filter(document_id=document.pk).exists()


def test_collection_reembed_moves_every_vector_to_the_configured_model(client, collection, live_db):
    texts = ["Bellows blow air into the forge.", "Tongs hold hot iron.\n\nQuenching hardens steel."]
    ids = [upload_final(client, collection, json={"title": f"t{i}", "text": text})["id"] for i, text in enumerate(texts)]
    Chunk.objects.filter(document_id__in=ids).update(embedding=[0.0] * 383 + [1.0])  # vectors "of the old model"
    _record_model(collection, INT8)
    version = Collection.objects.get(pk=collection["id"]).content_version
    assert client.post("/search/", json={"collection": collection["id"], "query": "forge"}).status_code == 409

    call_command("collection_reembed", str(collection["id"]))

    after = Collection.objects.get(pk=collection["id"])
    assert after.embedding_model == "hash-384" and after.content_version > version
    chunks = list(Chunk.objects.filter(document_id__in=ids).order_by("document_id", "ordinal"))
    expected = HashEmbedder().encode([c.text for c in chunks])
    assert np.allclose(np.stack([np.asarray(c.embedding) for c in chunks]), expected, atol=1e-6)
    assert set(Document.objects.filter(pk__in=ids).values_list("embedded_by", flat=True)) == {"hash-384"}
    search = client.post("/search/", json={"collection": collection["id"], "query": "bellows forge air", "mode": "vector"})
    assert search.status_code == 200, search.text
    assert search.json()["results"][0]["document_id"] == ids[0]
