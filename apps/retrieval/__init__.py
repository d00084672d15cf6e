"""Search only: hybrid retrieval over chunks (``selectors.py``: vector, text, fusion) and
metadata filters (``filters.py``). A leaf the query path (apps/query) calls into."""
