"""The TGI stand-in (devstack/tgi_standin) as Sluice's production client sees it.

Every generation call goes through ``huggingface_hub.InferenceClient``, the client
Sluice uses against real TGI, or plain HTTP where the test is about the wire itself; the
stand-in is driven through ``TGIStandIn``, as every caller drives it.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import (
    GenerationError,
    HfHubHTTPError,
    IncompleteGenerationError,
    InferenceTimeoutError,
    OverloadedError,
    UnknownError,
    ValidationError,
)

from devstack.tgi_standin import EOS_TOKEN_TEXT, TGIStandIn, answer_text
from tests.helpers import eventually

ANSWER_TOKENS = 14  # two six-word quotes, each with its citation
pytestmark = pytest.mark.usefixtures("fresh_standin")

BASE_SETTINGS = {
    "max_concurrent_requests": 4,
    "tokens_per_second": 0.0,
    "first_token_latency": 0.0,
    "answer_tokens": ANSWER_TOKENS,
}
PROMPT = (
    "Answer from the passages and cite them.\n"
    "[1] Paris is the capital of France and its largest city.\n"
    "[2] The Eiffel Tower was built in 1889 for the World's Fair.\n"
    "Question: what is Paris known for?"
)
OVERLOADED_BODY = {"error": "Model is overloaded", "error_type": "overloaded"}


@pytest.fixture
def client(standin: TGIStandIn) -> Iterator[InferenceClient]:
    with InferenceClient(base_url=standin.url, timeout=10) as c:
        yield c


@pytest.fixture
def control(standin: TGIStandIn) -> Iterator[httpx.Client]:
    """Plain HTTP to the stand-in."""
    with httpx.Client(base_url=standin.url, timeout=10) as c:
        yield c


def http_cause(error: BaseException) -> httpx.Response:
    """The HTTP response behind a TGI error that InferenceClient raised."""
    cause = error if isinstance(error, HfHubHTTPError) else error.__cause__
    assert isinstance(cause, HfHubHTTPError), f"{error!r} has no HTTP cause"
    return cause.response


# --------------------------------------------------------------------------- plain routes


def test_health_and_info(control: httpx.Client) -> None:
    health = control.get("/health")
    assert health.status_code == 200
    assert health.content == b""

    info = control.get("/info").json()
    assert info["model_id"] == "sluice/tgi-standin"
    assert info["max_concurrent_requests"] == 4
    assert info["max_input_tokens"] == 4095
    assert info["max_total_tokens"] == 4096
    assert info["router"] == "text-generation-router"
    assert "version" in info

    assert control.get("/nope").status_code == 404
    assert control.get("/elsewhere/info").status_code == 404  # what OpenAIBackend may probe
    assert control.get("/generate").status_code == 405


# --------------------------------------------------------------------------- text generation


def test_text_generation_quotes_and_cites_the_passages(client: InferenceClient) -> None:
    output = client.text_generation(PROMPT, max_new_tokens=50, details=True, return_full_text=False)

    assert output.generated_text == answer_text(PROMPT, max_new_tokens=50, answer_tokens=ANSWER_TOKENS)
    assert output.generated_text == " Paris is the capital of France [1]. The Eiffel Tower was built in [2]."
    details = output.details
    # Stopped on its own: an end-of-sequence token, counted but not part of the text.
    assert details.finish_reason == "eos_token"
    assert details.generated_tokens == ANSWER_TOKENS + 1
    assert details.tokens[-1].special and details.tokens[-1].text == EOS_TOKEN_TEXT
    assert "".join(t.text for t in details.tokens if not t.special) == output.generated_text

    short = client.text_generation(PROMPT, max_new_tokens=5, details=True, return_full_text=False)
    assert short.details.finish_reason == "length"
    assert short.details.generated_tokens == 5
    assert short.generated_text == " Paris is the capital of"

    plain = client.text_generation("no passages here", max_new_tokens=4, return_full_text=False)
    assert plain == answer_text("no passages here", max_new_tokens=4)


def test_compat_route_echoes_the_prompt_unless_told_not_to(client: InferenceClient) -> None:
    # InferenceClient posts to "/", where TGI defaults return_full_text to true for a
    # text-generation model: the prompt comes back in front of the answer.
    assert client.text_generation(PROMPT, max_new_tokens=3) == PROMPT + " Paris is the"
    assert client.text_generation(PROMPT, max_new_tokens=3, return_full_text=False) == " Paris is the"


def test_text_generation_stream(client: InferenceClient) -> None:
    events = list(client.text_generation(PROMPT, max_new_tokens=50, stream=True, details=True, return_full_text=False))

    assert [e.index for e in events] == list(range(1, ANSWER_TOKENS + 2))
    assert all(e.generated_text is None and e.details is None for e in events[:-1])
    last = events[-1]
    assert last.token.special
    assert last.details.finish_reason == "eos_token"
    assert last.details.generated_tokens == ANSWER_TOKENS + 1
    assert last.details.input_length == len(PROMPT.split())
    assert last.generated_text == answer_text(PROMPT, max_new_tokens=50, answer_tokens=ANSWER_TOKENS)
    assert "".join(e.token.text for e in events if not e.token.special) == last.generated_text

    texts = list(client.text_generation(PROMPT, max_new_tokens=3, stream=True, return_full_text=False))
    assert texts == [" Paris", " is", " the"]


def test_tgi_routes_over_plain_http(control: httpx.Client) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 4, "details": True}}

    generated = control.post("/generate", json=body)
    assert generated.status_code == 200
    assert generated.json()["generated_text"] == " Paris is the capital"
    assert generated.json()["details"]["finish_reason"] == "length"
    assert generated.json()["details"]["generated_tokens"] == 4

    compat = control.post("/", json={**body, "parameters": {"max_new_tokens": 4, "return_full_text": False}})
    assert compat.json() == [{"generated_text": " Paris is the capital"}]

    with control.stream("POST", "/generate_stream", json=body) as stream:
        assert stream.headers["content-type"] == "text/event-stream"
        lines = [line for line in stream.iter_lines() if line]
    assert all(line.startswith("data:{") for line in lines)
    events = [json.loads(line[len("data:"):]) for line in lines]
    assert events[0] == {
        "index": 1, "token": events[0]["token"], "generated_text": None, "details": None,
    }
    assert events[-1]["generated_text"] == " Paris is the capital"
    assert events[-1]["details"]["generated_tokens"] == 4


def test_chat_completion(client: InferenceClient) -> None:
    messages = [{"role": "system", "content": "Cite sources."}, {"role": "user", "content": PROMPT}]
    expected = answer_text(PROMPT, max_new_tokens=50, answer_tokens=ANSWER_TOKENS).lstrip()

    completion = client.chat_completion(messages, max_tokens=50)
    choice = completion.choices[0]
    assert choice.message.content == expected
    assert choice.finish_reason == "stop"
    assert completion.usage.completion_tokens == ANSWER_TOKENS + 1
    assert completion.model == "sluice/tgi-standin"

    chunks = list(client.chat_completion(messages, max_tokens=50, stream=True))  # ends on data: [DONE]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])

    token_chunks = list(client.chat_completion(messages, max_tokens=2, stream=True))
    assert [c.choices[0].delta.content for c in token_chunks] == ["Paris", " is"]
    assert token_chunks[-1].choices[0].finish_reason == "length"


def test_validation_errors_are_tgi_422s(client: InferenceClient) -> None:
    long_prompt = "word " * 5000
    with pytest.raises(ValidationError) as too_long:
        client.text_generation(long_prompt, max_new_tokens=5)
    response = http_cause(too_long.value)
    assert response.status_code == 422
    assert response.json() == {
        "error": "Input validation error: `inputs` must have less than 4095 tokens. Given: 5000",
        "error_type": "validation",
    }

    with pytest.raises(ValidationError) as too_many:
        client.text_generation("ten words " * 5, max_new_tokens=4090)
    assert http_cause(too_many.value).json()["error"] == (
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
        "Given: 10 `inputs` tokens and 4090 `max_new_tokens`"
    )

    # As in TGI, a stream reports the error as an event inside an HTTP 200 response.
    tokens = client.text_generation(long_prompt, max_new_tokens=5, stream=True)
    with pytest.raises(ValidationError, match="must have less than 4095 tokens"):
        next(iter(tokens))


# --------------------------------------------------------------------------- capacity


def test_requests_beyond_capacity_get_429_overloaded(standin: TGIStandIn, client: InferenceClient) -> None:
    standin.configure(tokens_per_second=20)  # each stream below lasts ~0.6 s
    holders = [InferenceClient(base_url=standin.url, timeout=10) for _ in range(4)]
    streams = [h.text_generation(PROMPT, max_new_tokens=50, stream=True, return_full_text=False) for h in holders]
    assert [next(s) for s in streams] == [" Paris"] * 4
    assert standin.stats()["in_flight"] == 4

    with pytest.raises(OverloadedError) as rejected:
        client.text_generation(PROMPT, max_new_tokens=5)
    response = http_cause(rejected.value)
    assert response.status_code == 429
    assert response.json() == OVERLOADED_BODY

    with pytest.raises(HfHubHTTPError) as chat_rejected:
        client.chat_completion([{"role": "user", "content": "hi"}], max_tokens=5)
    assert chat_rejected.value.response.status_code == 429
    assert chat_rejected.value.response.json() == OVERLOADED_BODY

    # TGI checks capacity inside the stream: a refused stream is an event, not a status.
    with pytest.raises(OverloadedError, match="Model is overloaded"):
        next(iter(client.text_generation(PROMPT, max_new_tokens=5, stream=True)))

    for stream in streams:
        assert len(list(stream)) == ANSWER_TOKENS  # the rest of each stream, EOS included
    for holder in holders:
        holder.close()
    stats = standin.stats()
    assert stats["rejected_429"] == 3
    assert stats["max_in_flight_seen"] == 4
    assert stats["completed"] == 4
    assert stats["in_flight"] == 0
    assert client.text_generation(PROMPT, max_new_tokens=2, return_full_text=False) == " Paris is"


def test_many_concurrent_streams(standin: TGIStandIn) -> None:
    standin.configure(max_concurrent_requests=400, tokens_per_second=50, answer_tokens=10)
    body = json.dumps({"inputs": PROMPT, "parameters": {"max_new_tokens": 10}}).encode()
    request = (
        b"POST /generate_stream HTTP/1.1\r\nHost: standin\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    # A bare asyncio client: httpx's connection pool costs O(connections) per request,
    # which would make this measure the client rather than the server.
    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", standin.port)
        writer.write(request)
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of a chunked body
            chunk = await reader.read(65536)
            assert chunk, "connection closed mid-stream"
            received += chunk
        writer.close()
        return received.count(b"data:{")

    async def many() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(300)))

    started = time.monotonic()
    counts = asyncio.run(many())
    elapsed = time.monotonic() - started
    assert counts == [10] * 300
    # The client can read the last event before the server has counted the request done.
    deadline = time.monotonic() + 5
    while (stats := standin.stats())["completed"] < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stats["completed"] == 300
    assert stats["max_in_flight_seen"] >= 200
    assert elapsed < 5, elapsed


# --------------------------------------------------------------------------- faults


def test_error_500_fault(standin: TGIStandIn, client: InferenceClient) -> None:
    standin.set_fault("error_500")
    for stream in (False, True):
        with pytest.raises(IncompleteGenerationError) as failed:
            client.text_generation(PROMPT, max_new_tokens=5, stream=stream)
        assert http_cause(failed.value).status_code == 500

    standin.clear_fault()
    assert client.text_generation(PROMPT, max_new_tokens=2, return_full_text=False) == " Paris is"
    stats = standin.stats()
    assert (stats["requests"], stats["completed"], stats["in_flight"]) == (3, 1, 0)


def test_midstream_error(standin: TGIStandIn, client: InferenceClient) -> None:
    standin.set_fault("midstream_error", after_tokens=3)

    received = []
    with pytest.raises(GenerationError, match="Request failed during generation"):
        for token in client.text_generation(PROMPT, max_new_tokens=20, stream=True, return_full_text=False):
            received.append(token)
    assert received == [" Paris", " is", " the"]

    with pytest.raises(GenerationError) as failed:
        client.text_generation(PROMPT, max_new_tokens=20)
    assert http_cause(failed.value).status_code == 424

    # Chat streams carry TGI 3's OpenAI-style error event.
    with pytest.raises(UnknownError, match="Request failed during generation"):
        list(client.chat_completion([{"role": "user", "content": PROMPT}], max_tokens=20, stream=True))


def test_hang_times_out_and_releases_the_slot(standin: TGIStandIn) -> None:
    standin.set_fault("hang")
    with InferenceClient(base_url=standin.url, timeout=0.5) as impatient:
        with pytest.raises(InferenceTimeoutError):
            impatient.text_generation(PROMPT, max_new_tokens=5)
        with pytest.raises(InferenceTimeoutError):
            impatient.text_generation(PROMPT, max_new_tokens=5, stream=True)

    eventually(lambda: standin.stats()["cancelled"] == 2)
    stats = standin.stats()
    assert stats["in_flight"] == 0
    assert stats["completed"] == 0

    standin.clear_fault()
    with InferenceClient(base_url=standin.url, timeout=5) as client:
        assert client.text_generation(PROMPT, max_new_tokens=1, return_full_text=False) == " Paris"


def test_client_leaving_mid_stream_is_counted_cancelled(standin: TGIStandIn) -> None:
    standin.configure(tokens_per_second=10)
    with InferenceClient(base_url=standin.url, timeout=5) as leaving:
        tokens = leaving.text_generation(PROMPT, max_new_tokens=50, stream=True, return_full_text=False)
        assert [next(tokens), next(tokens)] == [" Paris", " is"]
    # Leaving the client's context closes the response, and with it the connection.
    eventually(lambda: standin.stats()["cancelled"] == 1)
    assert standin.stats()["in_flight"] == 0
    assert standin.stats()["completed"] == 0


def test_down_fault(standin: TGIStandIn, control: httpx.Client, client: InferenceClient) -> None:
    standin.set_fault("down")
    health = control.get("/health")
    assert health.status_code == 503
    assert health.json() == {"error": "unhealthy", "error_type": "healthcheck"}
    with pytest.raises(UnknownError) as failed:
        client.text_generation(PROMPT, max_new_tokens=2)
    assert http_cause(failed.value).status_code == 503

    standin.clear_fault()
    assert control.get("/health").status_code == 200


def test_overloaded_and_slow_faults(standin: TGIStandIn, client: InferenceClient) -> None:
    standin.set_fault("overloaded")
    with pytest.raises(OverloadedError) as rejected:
        client.text_generation(PROMPT, max_new_tokens=2)
    assert http_cause(rejected.value).json() == OVERLOADED_BODY
    standin.clear_fault()
    assert client.text_generation(PROMPT, max_new_tokens=2, return_full_text=False) == " Paris is"

    standin.set_fault("slow", delay_s=0.3)
    started = time.monotonic()
    client.text_generation(PROMPT, max_new_tokens=2)
    assert time.monotonic() - started >= 0.3
    assert standin.stats()["rejected_429"] == 1


def test_controls_reject_bad_input(standin: TGIStandIn, control: httpx.Client) -> None:
    with pytest.raises(ValueError):
        standin.set_fault("explode")
    with pytest.raises(ValueError):
        standin.set_fault("slow", delay_s=-1)
    with pytest.raises(TypeError):
        standin.configure(gpu=1)
    assert control.post("/generate", content=b"{nope").status_code == 400
    assert control.post("/generate", json={"prompt": "no inputs"}).status_code == 422

    standin.configure(max_concurrent_requests=9)
    assert control.get("/info").json()["max_concurrent_requests"] == 9
    control.post("/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 1}})
    assert standin.stats()["requests"] == 1
    standin.reset()
    assert standin.stats()["requests"] == 0


# --------------------------------------------------------------------------- transport


def test_keep_alive_and_chunked_sse(standin: TGIStandIn) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=5)
    try:
        connection.request("GET", "/health")
        assert connection.getresponse().read() == b""
        sock = connection.sock

        body = json.dumps({"inputs": PROMPT, "parameters": {"max_new_tokens": 3}})
        connection.request("POST", "/generate_stream", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.getheader("transfer-encoding") == "chunked"
        assert response.read().count(b"data:{") == 3

        connection.request("POST", "/generate", body, {"Content-Type": "application/json"})
        assert json.loads(connection.getresponse().read())["generated_text"] == " Paris is the"
        assert connection.sock is sock  # all three on one connection
    finally:
        connection.close()

