"""A stand-in for Hugging Face text-generation-inference (TGI), for tests and benchmarks.

Not a product feature. There is no GPU and there are no weights here: the stand-in speaks
as much of TGI 3.x's HTTP protocol and overload behaviour as Sluice's production client
uses (``huggingface_hub.InferenceClient``: ``text_generation`` on TGI's compat route for
the ``tgi`` backend, ``chat_completion`` for the ``openai`` one, plus ``GET /info``), so
closely that the client cannot tell it from TGI, while generating deterministic text at a
configurable speed.

    with TGIStandIn(max_concurrent_requests=4, tokens_per_second=50) as tgi:
        ... SLUICE_GENERATION_URL=tgi.url ...
        tgi.set_fault("overloaded"); tgi.stats()["rejected_429"]

Modules, by concern:
    server.py     TGIStandIn: the uvicorn server on a background thread, its lifecycle and controls
    protocol.py   the routes, request validation, non-streaming answers, error shapes
    streaming.py  SSE token streams, and errors as stream events
    overload.py   the concurrency limit (429 "Model is overloaded") and the pace of tokens
    answers.py    the deterministic answer text, tokens, and answer JSON shapes
    state.py      settings (StandInConfig), injected faults, counters
    asgi.py       ASGI plumbing shared by protocol.py and streaming.py

Each module's docstring says what of TGI it keeps though Sluice never sends or reads it,
and why, and what was cut. Used by tests/generation, the ``tgi`` fixture in
tests/conftest.py, and bench/overload.py; it lives in devstack, not tests, because bench
uses it too.
"""
from .answers import EOS_TOKEN_TEXT, MODEL_ID, answer_text, input_token_count
from .server import TGIStandIn
from .state import FAULT_MODES, StandInConfig

__all__ = [
    "EOS_TOKEN_TEXT",
    "FAULT_MODES",
    "MODEL_ID",
    "StandInConfig",
    "TGIStandIn",
    "answer_text",
    "input_token_count",
]
