"""Documents and ingestion: collections, documents, parsing, chunking, embedding, storage."""
