"""The fake server is only useful if real clients accept its answers: check it with the openai client
and with the Agents SDK's two model classes, plain and streamed."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import urllib.error
import urllib.request

import openai
import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
)

from tests.fakes import Drop, Error, FakeOpenAIServer, Reply, ToolCall


def client(server: FakeOpenAIServer, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, **kwargs)


def test_chat_completion_plain_with_usage(fake_openai):
    fake_openai.script(Reply("Bonjour tout le monde", usage=(11, 4)))
    result = client(fake_openai).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "Say hello in French"}]
    )
    assert result.choices[0].message.content == "Bonjour tout le monde"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (11, 4, 15)
    recorded = fake_openai.requests_to("/v1/chat/completions")[0]
    assert recorded.body["messages"][0]["content"] == "Say hello in French"
    assert recorded.headers["Authorization"] == "Bearer sk-test"


def test_chat_completion_streamed_usage_only_when_asked(fake_openai):
    fake_openai.script(Reply("one two three"), Reply("four five"))
    chunks = list(
        client(fake_openai).chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].usage.completion_tokens == 3
    plain = list(
        client(fake_openai).chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "count"}], stream=True
        )
    )
    assert all(c.usage is None for c in plain)


def test_tool_calls_plain_and_streamed(fake_openai):
    fake_openai.script(
        [ToolCall("get_weather", {"city": "Paris"}, call_id="call_1"), ToolCall("get_time", {"tz": "UTC"})],
        ToolCall("get_weather", {"city": "Oslo"}),
    )
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    message = (
        client(fake_openai)
        .chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "weather?"}], tools=tools)
        .choices[0]
        .message
    )
    assert next((c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert message.tool_calls[1].function.name == "get_time"
    chunks = list(
        client(fake_openai).chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "weather?"}], tools=tools, stream=True
        )
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_injected_errors_reach_the_client_as_the_real_api_would(fake_openai, status, exception):
    fake_openai.script(Error(status, headers={"retry-after": "0"}))
    with pytest.raises(exception) as info:
        client(fake_openai).chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status
    assert info.value.body["message"]


def test_the_client_retries_a_429_and_then_succeeds(fake_openai):
    fake_openai.script(Error(429, headers={"retry-after-ms": "10"}), Error(500), Reply("finally"))
    retrying = openai.OpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=2)
    result = retrying.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
    assert result.choices[0].message.content == "finally"
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 3


def test_slow_reply_times_out_and_drop_is_a_connection_error(fake_openai):
    fake_openai.script(Reply("too late", delay=2.0), Drop())
    with pytest.raises(openai.APITimeoutError):
        client(fake_openai, timeout=0.3).chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.APIConnectionError):
        client(fake_openai).chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])


def test_api_key_is_enforced_when_configured():
    with FakeOpenAIServer(api_key="sk-right") as server:
        with pytest.raises(openai.AuthenticationError):
            client(server).models.list()
        good = openai.OpenAI(base_url=server.base_url, api_key="sk-right", max_retries=0)
        assert [m.id for m in good.models.list()] == ["fake-model", "fake-embedding"]


def test_embeddings_are_deterministic_unit_vectors(fake_openai):
    api = client(fake_openai)
    first = api.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    again = api.embeddings.create(model="text-embedding-3-small", input="alpha", encoding_format="base64")
    small = api.embeddings.create(model="fake-embedding", input=["alpha"], dimensions=384)
    assert len(first.data) == 2
    assert len(first.data[0].embedding) == 1536
    assert first.data[0].embedding != first.data[1].embedding
    decoded = struct.unpack("<1536f", base64.b64decode(again.data[0].embedding))
    assert list(decoded) == pytest.approx(first.data[0].embedding, abs=1e-6)
    assert sum(v * v for v in small.data[0].embedding) == pytest.approx(1.0)
    assert len(small.data[0].embedding) == 384
    fake_openai.script(Error(429, path="/v1/embeddings"))
    with pytest.raises(openai.RateLimitError):
        api.embeddings.create(model="fake-embedding", input="x")


def _post_status(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_bad_requests_are_400(fake_openai):
    assert _post_status(f"{fake_openai.base_url}/embeddings", json.dumps({"input": [1, 2]}).encode()) == 400
    assert _post_status(f"{fake_openai.base_url}/chat/completions", b"{nope") == 400


def test_defaults_and_echo_when_nothing_is_scripted():
    with FakeOpenAIServer(echo=True) as server:
        reply = client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": "ping 42"}])
        assert reply.choices[0].message.content == "ping 42"
        assert server.pending() == 0


# --- through the Agents SDK ------------------------------------------------------------------------
@function_tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"It is sunny in {city}."


NO_TRACES = RunConfig(tracing_disabled=True)


def make_model(kind: str, client: openai.AsyncOpenAI):
    model_class = OpenAIChatCompletionsModel if kind == "chat" else OpenAIResponsesModel
    return model_class(model="fake-model", openai_client=client)


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_sdk_tool_call_round_trip(fake_openai, kind):
    fake_openai.script(ToolCall("get_weather", {"city": "Paris"}), Reply("Paris is sunny today."))

    async def run():
        # One client per event loop, closed on that loop (see the SDK reference, pitfall P2).
        async with openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=0) as api:
            agent = Agent(
                name="weather", instructions="Answer about weather.", tools=[get_weather], model=make_model(kind, api)
            )
            return await Runner.run(agent, "Weather in Paris?", run_config=NO_TRACES)

    result = asyncio.run(run())
    assert result.final_output == "Paris is sunny today."
    path = "/v1/chat/completions" if kind == "chat" else "/v1/responses"
    second = json.dumps(fake_openai.requests_to(path)[1].body)
    assert "It is sunny in Paris." in second  # the tool's result went back to the model
    assert result.context_wrapper.usage.requests == 2
    assert result.context_wrapper.usage.total_tokens > 0


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_sdk_streaming_with_usage(fake_openai, kind):
    fake_openai.script(Reply("Streaming works fine here", usage=(7, 4)))

    async def run():
        async with openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=0) as api:
            agent = Agent(
                name="streamer",
                instructions="Be brief.",
                model=make_model(kind, api),
                model_settings=ModelSettings(include_usage=True),
            )
            result = Runner.run_streamed(agent, "Stream please", run_config=NO_TRACES)
            deltas = [
                event.data.delta
                async for event in result.stream_events()
                if event.type == "raw_response_event"
                and getattr(event.data, "type", "") == "response.output_text.delta"
            ]
            return deltas, result

    deltas, result = asyncio.run(run())
    assert "".join(deltas) == "Streaming works fine here"
    assert len(deltas) == 4
    assert result.final_output == "Streaming works fine here"
    assert (result.context_wrapper.usage.input_tokens, result.context_wrapper.usage.output_tokens) == (7, 4)
