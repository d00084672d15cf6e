"""Fixtures for retrieval and query tests: a small ingested corpus with metadata."""
import pytest

from tests.helpers import wait_document

DOCS = [
    ("Volcanoes", "Volcanoes erupt molten lava and ash when magma rises through the crust.", {"lang": "en", "topic": "geology"}),
    ("Bread", "Bakers knead dough and let the yeast ferment before baking bread in hot ovens.", {"lang": "en", "topic": "food"}),
    ("Pain", "Le boulanger pétrit la pâte et cuit le pain dans un four chaud.", {"lang": "fr", "topic": "food"}),
]


@pytest.fixture
def corpus(client, collection):
    ids = {}
    for title, text, metadata in DOCS:
        response = client.post(f"/collections/{collection['id']}/documents/", json={"title": title, "text": text, "metadata": metadata})
        ids[title] = response.json()["documents"][0]["id"]
    for document_id in ids.values():
        assert wait_document(client, document_id)["status"] == "ready"
    return ids


