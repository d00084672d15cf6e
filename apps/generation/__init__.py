"""Answer generation: prompts built from retrieved passages, and the backends (TGI, OpenAI-compatible, extractive) that answer them."""
