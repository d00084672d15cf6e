"""API keys (with the request class they carry), authentication and throttling."""
