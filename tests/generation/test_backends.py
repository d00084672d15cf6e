"""Generation backends against a real TGI stand-in server (devstack/tgi_standin).

Nothing of ours is mocked: the backends talk HTTP to the stand-in through
``huggingface_hub.InferenceClient``, and faults are injected on the server side.
"""
import contextlib
import pickle
import socket
import time
from collections.abc import Callable

import pytest

from apps.generation.services.backends import (
    ExtractiveBackend,
    GenerationError,
    ModelLimits,
    OpenAIBackend,
    TGIBackend,
    backend_from_settings,
)
from apps.generation.services.extractive import EXTRACTIVE_LABEL
from apps.generation.services.prompting import BuiltPrompt, Passage, prompt_build
from tests.helpers import eventually
from devstack.tgi_standin import EOS_TOKEN_TEXT, TGIStandIn, answer_text

ANSWER_TOKENS = 14
pytestmark = pytest.mark.usefixtures("fresh_standin")

BASE_SETTINGS = {
    "max_concurrent_requests": 4,
    "max_input_tokens": 4095,
    "max_total_tokens": 4096,
    "tokens_per_second": 0.0,
    "first_token_latency": 0.0,
    "answer_tokens": ANSWER_TOKENS,
    "sse_keepalive_s": 15.0,
}
TIMEOUT = 5.0
SHORT_TIMEOUT = 0.5
MARGIN = 0.4  # seconds a deadline may overrun: thread hand-over, a loaded CI machine
PASSAGES = [
    Passage(
        chunk_id=1,
        document_id=1,
        title="France",
        text="Paris is the capital of France and its largest city.",
        score=0.9,
    ),
    Passage(
        chunk_id=2,
        document_id=2,
        title="Eiffel Tower",
        text="The Eiffel Tower was built in 1889 for the World's Fair.",
        score=0.8,
        heading_path=("Landmarks",),
    ),
]


@pytest.fixture
def prompt() -> BuiltPrompt:
    return prompt_build(
        question="What is Paris known for?", passages=PASSAGES, max_input_tokens=3000, max_new_tokens=50
    )


@pytest.fixture(params=["tgi", "openai"])
def backend(request: pytest.FixtureRequest, standin: TGIStandIn) -> TGIBackend | OpenAIBackend:
    return backend_from_settings(kind=request.param, url=standin.url)


def expected_answer(backend_name: str, prompt: BuiltPrompt, max_new_tokens: int = 50) -> str:
    text = answer_text(prompt.text, max_new_tokens=max_new_tokens, answer_tokens=ANSWER_TOKENS)
    # Chat templates end in a newline, so the first chat token has no leading space.
    return text.lstrip() if backend_name == "openai" else text


def failure(call: Callable[[], object]) -> tuple[GenerationError, float]:
    started = time.monotonic()
    with pytest.raises(GenerationError) as raised:
        call()
    return raised.value, time.monotonic() - started


# --------------------------------------------------------------------------- answers


def test_generate(backend: TGIBackend | OpenAIBackend, prompt: BuiltPrompt) -> None:
    result = backend.generate(prompt=prompt, max_new_tokens=50, timeout=TIMEOUT)

    assert result.text == expected_answer(backend.name, prompt)
    assert "[1]" in result.text and "[2]" in result.text  # the stand-in found both passages
    assert EOS_TOKEN_TEXT not in result.text
    assert not result.text.strip().startswith("You answer")  # the prompt is not echoed
    assert result.finish_reason == ("eos_token" if backend.name == "tgi" else "stop")
    assert result.generated_tokens == ANSWER_TOKENS + 1  # the end-of-sequence token counts
    assert result.backend == backend.name

    short = backend.generate(prompt=prompt, max_new_tokens=3, timeout=TIMEOUT)
    assert short.finish_reason == "length"
    assert short.text == expected_answer(backend.name, prompt, max_new_tokens=3)


def test_stream(backend: TGIBackend | OpenAIBackend, prompt: BuiltPrompt, standin: TGIStandIn) -> None:
    pieces = list(backend.stream(prompt=prompt, max_new_tokens=50, timeout=TIMEOUT))

    assert "".join(pieces) == expected_answer(backend.name, prompt)
    assert len(pieces) == ANSWER_TOKENS  # one per token, the end-of-sequence one left out
    assert all(piece and EOS_TOKEN_TEXT not in piece for piece in pieces)
    assert standin.stats()["completed"] == 1


def test_tgi_limits_from_info(standin: TGIStandIn) -> None:
    standin.configure(max_input_tokens=2000, max_total_tokens=2048, max_concurrent_requests=3)
    backend = TGIBackend(standin.url)

    limits = backend.limits()
    assert limits == ModelLimits(
        max_input_tokens=2000, max_total_tokens=2048, max_concurrent_requests=3, model_id="sluice/tgi-standin"
    )
    assert limits.prompt_budget(max_new_tokens=100) == 1948
    assert limits.prompt_budget(max_new_tokens=10) == 2000

    # Cached: a change on the server shows once the TTL has passed.
    standin.configure(max_input_tokens=1000, max_total_tokens=1024)
    assert backend.limits().max_input_tokens == 2000
    assert TGIBackend(standin.url, info_ttl=0).limits().max_input_tokens == 1000


def test_openai_limits(standin: TGIStandIn) -> None:
    standin.configure(max_input_tokens=2000, max_total_tokens=2048)
    # A TGI behind the OpenAI-compatible route still has /info, also from a .../v1 URL.
    assert OpenAIBackend(standin.url + "/v1").limits().max_total_tokens == 2048
    configured = OpenAIBackend(standin.url, max_input_tokens=500, max_total_tokens=1000).limits()
    assert (configured.max_input_tokens, configured.max_total_tokens, configured.model_id) == (500, 1000, "tgi")
    # A server without /info (here: a path that answers 404) gets the defaults.
    defaults = OpenAIBackend(standin.url + "/elsewhere/v1", model="my-model").limits()
    assert defaults == ModelLimits(
        max_input_tokens=4095, max_total_tokens=4096, max_concurrent_requests=128, model_id="my-model"
    )


def test_prompt_from_limits_is_accepted(standin: TGIStandIn) -> None:
    # The whole chain: /info -> budget -> prompt that TGI's validation accepts.
    standin.configure(max_input_tokens=600, max_total_tokens=640)
    backend = TGIBackend(standin.url)
    passages = [
        Passage(chunk_id=n, document_id=n, title=f"Doc {n}", text=" ".join(["filler"] * 60), score=1.0)
        for n in range(1, 6)
    ]
    budget = backend.limits().prompt_budget(max_new_tokens=50)
    assert budget == 590
    built = prompt_build(question="Why?", passages=passages, max_input_tokens=budget, max_new_tokens=50)
    assert built.dropped > 0 and built.input_tokens <= 590
    result = backend.generate(prompt=built, max_new_tokens=50, timeout=TIMEOUT)
    assert result.text


# --------------------------------------------------------------------------- failures


def test_over_capacity_is_overloaded(standin: TGIStandIn, prompt: BuiltPrompt) -> None:
    standin.configure(max_concurrent_requests=1, tokens_per_second=20)
    backend = TGIBackend(standin.url)
    with contextlib.closing(backend.stream(prompt=prompt, max_new_tokens=50, timeout=TIMEOUT)) as holder:
        assert next(holder) == " Paris"
        assert standin.stats()["in_flight"] == 1

        refused, _ = failure(lambda: backend.generate(prompt=prompt, max_new_tokens=5, timeout=TIMEOUT))
        assert (refused.kind, refused.status, refused.retryable) == ("overloaded", 429, True)

        # TGI refuses a stream with an SSE error event inside a 200 response.
        refused_stream, _ = failure(lambda: list(backend.stream(prompt=prompt, max_new_tokens=5, timeout=TIMEOUT)))
        assert refused_stream.kind == "overloaded" and refused_stream.retryable
    assert standin.stats()["rejected_429"] == 2


@pytest.mark.parametrize(
    ("mode", "kind", "status"),
    [("overloaded", "overloaded", 429), ("error_500", "unavailable", 500), ("down", "unavailable", 503)],
)
def test_server_faults(
    backend: TGIBackend | OpenAIBackend, prompt: BuiltPrompt, standin: TGIStandIn, mode: str, kind: str, status: int
) -> None:
    standin.set_fault(mode)
    error, _ = failure(lambda: backend.generate(prompt=prompt, max_new_tokens=5, timeout=TIMEOUT))
    assert (error.kind, error.status, error.retryable) == (kind, status, True)

    error, _ = failure(lambda: list(backend.stream(prompt=prompt, max_new_tokens=5, timeout=TIMEOUT)))
    assert error.kind == kind and error.retryable


def test_validation_error_is_not_retryable(backend: TGIBackend | OpenAIBackend, standin: TGIStandIn) -> None:
    standin.configure(max_input_tokens=20, max_total_tokens=40)
    too_long = prompt_build(question="Why?", passages=PASSAGES, max_input_tokens=3000, max_new_tokens=5)

    error, _ = failure(lambda: backend.generate(prompt=too_long, max_new_tokens=5, timeout=TIMEOUT))
    assert (error.kind, error.status, error.retryable) == ("validation", 422, False)
    error, _ = failure(lambda: list(backend.stream(prompt=too_long, max_new_tokens=5, timeout=TIMEOUT)))
    assert error.kind == "validation" and not error.retryable


def test_midstream_error_is_raised_while_iterating(
    backend: TGIBackend | OpenAIBackend, prompt: BuiltPrompt, standin: TGIStandIn
) -> None:
    standin.set_fault("midstream_error", after_tokens=3)
    received = []
    with pytest.raises(GenerationError) as raised:
        for piece in backend.stream(prompt=prompt, max_new_tokens=50, timeout=TIMEOUT):
            received.append(piece)
    assert "".join(received) == expected_answer(backend.name, prompt, max_new_tokens=3)
    assert raised.value.kind == "unavailable"
    assert "failed during generation" in str(raised.value)

    standin.set_fault("midstream_error", after_tokens=3)
    error, _ = failure(lambda: backend.generate(prompt=prompt, max_new_tokens=50, timeout=TIMEOUT))
    assert (error.kind, error.status) == ("unavailable", 424)


def test_hung_server_times_out_within_the_timeout(
    backend: TGIBackend | OpenAIBackend, prompt: BuiltPrompt, standin: TGIStandIn
) -> None:
    standin.set_fault("hang")
    error, elapsed = failure(lambda: backend.generate(prompt=prompt, max_new_tokens=5, timeout=SHORT_TIMEOUT))
    assert error.kind == "timeout" and error.retryable
    assert SHORT_TIMEOUT - 0.05 <= elapsed < SHORT_TIMEOUT + MARGIN

    error, elapsed = failure(lambda: next(backend.stream(prompt=prompt, max_new_tokens=5, timeout=SHORT_TIMEOUT)))
    assert error.kind == "timeout"
    assert elapsed < SHORT_TIMEOUT + MARGIN

    # The abandoned requests are closed, and TGI frees their slots.
    eventually(lambda: standin.stats()["cancelled"] == 2 and standin.stats()["in_flight"] == 0)


def test_keepalives_do_not_extend_the_first_token_deadline(prompt: BuiltPrompt, standin: TGIStandIn) -> None:
    # A queued TGI stream sends SSE keep-alive comments, not tokens: an HTTP read timeout
    # alone would never fire.
    standin.configure(sse_keepalive_s=0.1)
    standin.set_fault("slow", delay_s=1.5)
    backend = TGIBackend(standin.url)

    error, elapsed = failure(lambda: next(backend.stream(prompt=prompt, max_new_tokens=5, timeout=SHORT_TIMEOUT)))
    assert error.kind == "timeout"
    assert elapsed < SHORT_TIMEOUT + MARGIN


def test_slow_tokens_time_out_between_tokens(prompt: BuiltPrompt, standin: TGIStandIn) -> None:
    standin.configure(tokens_per_second=2)  # 0.5 s between tokens
    backend = TGIBackend(standin.url)
    tokens = backend.stream(prompt=prompt, max_new_tokens=50, timeout=0.3)
    assert next(tokens) == " Paris"
    error, elapsed = failure(lambda: next(tokens))
    assert error.kind == "timeout" and elapsed < 0.3 + MARGIN


def test_closing_a_stream_early_releases_the_slot(
    backend: TGIBackend | OpenAIBackend, prompt: BuiltPrompt, standin: TGIStandIn
) -> None:
    standin.configure(tokens_per_second=20)
    tokens = backend.stream(prompt=prompt, max_new_tokens=50, timeout=TIMEOUT)
    assert len([next(tokens), next(tokens)]) == 2
    assert standin.stats()["in_flight"] == 1

    tokens.close()

    eventually(lambda: standin.stats()["in_flight"] == 0, timeout_s=2)
    stats = standin.stats()
    assert (stats["cancelled"], stats["completed"]) == (1, 0)
    assert stats["tokens_generated"] < ANSWER_TOKENS


def test_unreachable_server_is_unavailable(prompt: BuiltPrompt) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for backend in (TGIBackend(url, timeout=1), OpenAIBackend(url, timeout=1)):
        error, _ = failure(lambda: backend.generate(prompt=prompt, max_new_tokens=5, timeout=1))
        assert error.kind == "unavailable" and error.retryable
        error, _ = failure(lambda: list(backend.stream(prompt=prompt, max_new_tokens=5, timeout=1)))
        assert error.kind == "unavailable"
        error, _ = failure(backend.limits)
        assert error.kind == "unavailable"


# --------------------------------------------------------------------------- extractive, choosing


def test_extractive_backend_needs_no_server(prompt: BuiltPrompt) -> None:
    backend = backend_from_settings(kind="extractive", url=None, timeout=3, token="ignored")
    assert isinstance(backend, ExtractiveBackend)

    result = backend.generate(prompt=prompt, max_new_tokens=50, timeout=0.01)
    assert result.text.startswith(EXTRACTIVE_LABEL + "\n")
    assert "Paris is the capital of France and its largest city. [1]" in result.text
    assert result.backend == "extractive"

    pieces = list(backend.stream(prompt=prompt, max_new_tokens=50, timeout=0.01))
    assert "".join(pieces) == result.text
    assert len(pieces) > 5 and all(len(piece.split()) == 1 for piece in pieces)
    assert backend.limits().prompt_budget(max_new_tokens=500) > 100_000


def test_backend_from_settings(standin: TGIStandIn) -> None:
    tgi = backend_from_settings(kind="TGI", url=standin.url, timeout=7, token=None, model="ignored-for-tgi")
    assert isinstance(tgi, TGIBackend) and tgi.timeout == 7
    openai = backend_from_settings(kind="openai", url=standin.url, model="m", max_total_tokens=None)
    assert isinstance(openai, OpenAIBackend) and openai.model == "m"

    for kind in ("tgi", "openai"):
        with pytest.raises(ValueError, match="SLUICE_GENERATION_URL"):
            backend_from_settings(kind=kind, url=None)
    with pytest.raises(ValueError, match="unknown generation backend 'gpt'"):
        backend_from_settings(kind="gpt", url=standin.url)
    with pytest.raises(TypeError, match="timout"):
        backend_from_settings(kind="tgi", url=standin.url, timout=3)


def test_generation_error() -> None:
    error = GenerationError("busy", kind="overloaded", status=429)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.kind, copy.status, copy.retryable) == ("busy", "overloaded", 429, True)
    assert not GenerationError("bad", kind="validation").retryable
    assert not GenerationError("bad", kind="bad_response").retryable
    with pytest.raises(ValueError):
        GenerationError("?", kind="exploded")
