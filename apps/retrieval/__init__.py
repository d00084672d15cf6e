"""Retrieval and query: hybrid search over chunks, the query pipeline and its API."""
