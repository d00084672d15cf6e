"""Answer generation, a leaf: prompts built from retrieved passages, the backends (TGI,
OpenAI-compatible, extractive) that answer them, extractive answers and citations. It
imports nothing from the query path or retrieval."""
