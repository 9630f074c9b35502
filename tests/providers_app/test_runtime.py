from __future__ import annotations

import asyncio
import json
import logging

import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, RunConfig, Runner
from agents.result import RunResultBase
from django.test import override_settings

from providers_app.clients import close_clients_for_running_loop
from providers_app.egress import EgressDeniedError
from providers_app.exceptions import InvalidInputError
from providers_app.failures import describe_failure
from providers_app.runtime import build_model, clean_model_settings
from providers_app.selectors import provider_for_run
from providers_app.services import provider_create, provider_make_default
from tests.fakes import Drop, Error, Reply

KEY = "sk-test-0123456789abcdefSECRETKEYVALUE"
NO_TRACES = RunConfig(tracing_disabled=True)
FAST_RETRY = {"retry-after-ms": "5"}

TYPES = ["openai", "anthropic", "google", "huggingface", "custom", "local"]


def make_provider(actor, kind: str, server):
    if kind == "local":
        return provider_for_run(workspace=actor.workspace)
    return provider_create(
        actor=actor, type=kind, name=kind, api_key=KEY, base_url=server.base_url, models=["fake-model"]
    )


def run(provider, prompt="Hi", *, stream=False, model_name=None, settings=None):
    """Run a one-agent conversation through the SDK on a fresh loop; return (output, usage, error)."""

    async def go():
        try:
            resolved = build_model(provider=provider, model_name=model_name, settings=settings)
            agent = Agent(
                name="a", instructions="Be brief.", model=resolved.model, model_settings=resolved.model_settings
            )
            result: RunResultBase
            if stream:
                streamed = Runner.run_streamed(agent, prompt, run_config=NO_TRACES)
                async for _ in streamed.stream_events():
                    pass
                result = streamed
            else:
                result = await Runner.run(agent, prompt, run_config=NO_TRACES)
            return resolved, result.final_output, result.context_wrapper.usage
        finally:
            await close_clients_for_running_loop()

    return asyncio.run(go())


@pytest.fixture
def local_points_at_fake(fake_openai):
    with override_settings(LOCAL_MODEL_BASE_URL=fake_openai.base_url):
        yield


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("stream", [False, True])
def test_every_type_runs_through_the_sdk_with_usage(
    team, fake_openai, allow_loopback, local_points_at_fake, kind, stream
):
    provider = make_provider(team, kind, fake_openai)
    fake_openai.script(Reply("Hello there friend", usage=(9, 3)))
    resolved, output, usage = run(provider, stream=stream)
    assert output == "Hello there friend"
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 9, 3)
    expected = OpenAIResponsesModel if kind == "openai" else OpenAIChatCompletionsModel
    assert type(resolved.model) is expected
    path = "/v1/responses" if kind == "openai" else "/v1/chat/completions"
    request = fake_openai.requests_to(path)[0]
    assert request.body["model"] == ("smollm2" if kind == "local" else "fake-model")
    if kind != "local":
        assert request.headers["Authorization"] == f"Bearer {KEY}"
    if stream and kind != "openai":
        assert request.body["stream_options"] == {"include_usage": True}


def test_default_base_urls_are_used_when_none_is_given(team):
    async def base_url(provider):
        try:
            return str(build_model(provider=provider).model._client.base_url)
        finally:
            await close_clients_for_running_loop()

    openai_provider = provider_create(actor=team, type="openai", name="o", api_key=KEY)
    google_provider = provider_create(actor=team, type="google", name="g", api_key=KEY)
    assert asyncio.run(base_url(openai_provider)) == "https://api.openai.com/v1/"
    assert asyncio.run(base_url(google_provider)) == "https://generativelanguage.googleapis.com/v1beta/openai/"


def test_model_settings_reach_the_request(team, fake_openai, allow_loopback):
    provider = make_provider(team, "custom", fake_openai)
    run(
        provider,
        settings={"temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "extra": {"seed": 7}},
        model_name="other-model",
    )
    body = fake_openai.requests_to("/v1/chat/completions")[0].body
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        "other-model",
        0.2,
        0.9,
        50,
        7,
    )


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"extra": {"stream": True}}, "extra"),
        ({"nope": 1}, "nope"),
    ],
)
def test_bad_model_settings_are_refused(settings, field):
    with pytest.raises(InvalidInputError) as info:
        clean_model_settings(settings)
    assert field in info.value.fields


def test_clients_are_reused_within_a_loop_and_not_across_loops(team, fake_openai, allow_loopback):
    provider = make_provider(team, "custom", fake_openai)

    async def clients():
        try:
            return build_model(provider=provider).model._client, build_model(provider=provider).model._client
        finally:
            await close_clients_for_running_loop()

    first_a, first_b = asyncio.run(clients())
    second_a, _ = asyncio.run(clients())
    assert first_a is first_b
    assert first_a is not second_a


def model_path(kind: str) -> str:
    return "/v1/responses" if kind == "openai" else "/v1/chat/completions"


@override_settings(PROVIDER_MAX_RETRIES=2)
@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("status", [429, 500, 503])
def test_429_and_5xx_are_retried_then_succeed(team, fake_openai, allow_loopback, local_points_at_fake, kind, status):
    provider = make_provider(team, kind, fake_openai)
    fake_openai.script(Error(status, headers=FAST_RETRY), Error(status, headers=FAST_RETRY), Reply("made it"))
    _, output, _ = run(provider)
    assert output == "made it"
    assert len(fake_openai.requests_to(model_path(kind))) == 3


@override_settings(PROVIDER_MAX_RETRIES=2)
def test_retries_are_bounded(team, fake_openai, allow_loopback):
    provider = make_provider(team, "custom", fake_openai)
    fake_openai.script(*[Error(429, headers=FAST_RETRY) for _ in range(5)])
    with pytest.raises(openai.RateLimitError) as info:
        run(provider)
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 3
    failure = describe_failure(info.value, provider)
    assert failure.code == "provider_rate_limited"


@pytest.mark.parametrize("kind", [t for t in TYPES if t != "local"])
@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_fail_at_once_without_leaking_the_key(team, fake_openai, allow_loopback, kind, status, caplog):
    provider = make_provider(team, kind, fake_openai)
    fake_openai.script(Error(status, message=f"Incorrect API key provided: {KEY[:8]}***{KEY[-4:]}"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(openai.APIStatusError) as info:
        run(provider)
    assert len(fake_openai.requests_to(model_path(kind))) == 1
    failure = describe_failure(info.value, provider)
    assert failure.code == "provider_auth_failed"
    assert f"HTTP {status}" in failure.message
    for text in (failure.message, caplog.text):
        assert KEY not in text
        assert KEY[-4:] not in failure.message


@override_settings(PROVIDER_MAX_RETRIES=1, PROVIDER_TIMEOUT_SECONDS=1)
@pytest.mark.parametrize("kind", ["openai", "custom"])
def test_timeouts_are_retried_then_reported(team, fake_openai, allow_loopback, kind):
    provider = make_provider(team, kind, fake_openai)
    fake_openai.script(Reply("late", delay=1.5), Reply("late", delay=1.5))
    with pytest.raises(openai.APITimeoutError) as info:
        run(provider)
    assert len(fake_openai.requests_to(model_path(kind))) == 2
    assert describe_failure(info.value, provider).code == "provider_timeout"


@override_settings(PROVIDER_MAX_RETRIES=1)
def test_a_dropped_connection_is_retried(team, fake_openai, allow_loopback):
    provider = make_provider(team, "custom", fake_openai)
    fake_openai.script(Drop(), Reply("second time lucky"))
    assert run(provider)[1] == "second time lucky"


def test_a_404_base_url_fails_at_once_with_a_hint(team, fake_openai, allow_loopback):
    provider = provider_create(
        actor=team, type="custom", name="wrong", base_url=fake_openai.base_url + "/nope", models=["m"]
    )
    with pytest.raises(openai.NotFoundError) as info:
        run(provider)
    failure = describe_failure(info.value, provider)
    assert failure.code == "provider_not_found"
    assert "/v1" in failure.message


def test_unknown_host_fails_at_once(team):
    provider = provider_create(
        actor=team, type="custom", name="typo", base_url="https://no-such-host.invalid/v1", models=["m"]
    )
    with pytest.raises(openai.APIConnectionError) as info:
        run(provider)
    failure = describe_failure(info.value, provider)
    assert failure.code == "provider_bad_base_url"
    assert "no-such-host.invalid" in failure.message


def test_the_guard_refuses_private_addresses_at_connect_time(team, fake_openai):
    # Saved while an operator allowed loopback; the allowlist was then removed (or DNS changed).
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider = make_provider(team, "custom", fake_openai)
    with pytest.raises(EgressDeniedError) as info:
        run(provider)
    assert fake_openai.requests == []
    assert describe_failure(info.value, provider).code == "provider_address_blocked"


def test_local_model_down_names_the_sidecar(team):
    with override_settings(LOCAL_MODEL_BASE_URL="http://127.0.0.1:9/v1", PROVIDER_MAX_RETRIES=0):
        provider = provider_for_run(workspace=team.workspace)
        with pytest.raises(openai.APIConnectionError) as info:
            run(provider)
        failure = describe_failure(info.value, provider)
    assert failure.code == "local_model_unavailable"
    assert "bundled local model is not running" in failure.message
    assert "make run" in failure.message


def test_tool_calls_round_trip_through_a_provider(team, fake_openai, allow_loopback):
    from agents import function_tool

    from tests.fakes import ToolCall

    @function_tool
    def lookup(code: str) -> str:
        """Look a code up."""
        return f"code {code} is valid"

    provider = make_provider(team, "anthropic", fake_openai)
    fake_openai.script(ToolCall("lookup", {"code": "X1"}), Reply("It is valid."))

    async def go():
        try:
            resolved = build_model(provider=provider)
            agent = Agent(
                name="a",
                instructions="Use tools.",
                model=resolved.model,
                tools=[lookup],
                model_settings=resolved.model_settings,
            )
            return await Runner.run(agent, "Check X1", run_config=NO_TRACES)
        finally:
            await close_clients_for_running_loop()

    result = asyncio.run(go())
    assert result.final_output == "It is valid."
    assert "code X1 is valid" in json.dumps(fake_openai.requests_to("/v1/chat/completions")[1].body)


def test_secret_headers_and_keys_never_reach_the_logs(team, fake_openai, allow_loopback, caplog):
    provider = provider_create(
        actor=team,
        type="custom",
        name="hdr",
        api_key=KEY,
        base_url=fake_openai.base_url,
        models=["m"],
        extra_headers={"X-Api-Secret": "header-secret-123456"},
    )
    caplog.set_level(logging.DEBUG)
    fake_openai.script(Error(500, message=f"upstream broke, key was {KEY}", headers=FAST_RETRY))
    with override_settings(PROVIDER_MAX_RETRIES=0), pytest.raises(openai.InternalServerError) as info:
        run(provider)
    assert fake_openai.requests_to("/v1/chat/completions")[0].headers["X-Api-Secret"] == "header-secret-123456"
    failure = describe_failure(info.value, provider)
    for text in (caplog.text, failure.message):
        assert KEY not in text
        assert "header-secret-123456" not in text
    assert "[redacted]" in failure.message


def test_the_log_filter_redacts_key_shaped_text():
    from config.logfilters import RedactSecretsFilter

    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "calling %s with %s",
        ("https://user:pass@example.com/v1", "Bearer sk-abcdef0123456789"),
        None,
    )
    RedactSecretsFilter().filter(record)
    message = record.getMessage()
    assert "pass@" not in message
    assert "sk-abcdef0123456789" not in message
    assert "example.com/v1" in message


@pytest.mark.django_db(transaction=True)
def test_aresolve_model_picks_the_default_or_the_given_provider(fake_openai, allow_loopback):
    from providers_app.exceptions import NotFoundError
    from providers_app.runtime import aresolve_model
    from tests.factories import make_user, make_workspace

    team = make_workspace(owner=make_user())
    other = make_workspace(owner=make_user())
    chosen = make_provider(team, "custom", fake_openai)
    provider_make_default(actor=team, provider_id=chosen.pk)
    foreign = provider_create(actor=other, type="custom", name="x", base_url=fake_openai.base_url, models=["m"])
    provider_make_default(actor=other, provider_id=foreign.pk)

    async def go(provider_id=None, workspace=team.workspace):
        try:
            return await aresolve_model(workspace=workspace, provider_id=provider_id, settings={"temperature": 1})
        finally:
            await close_clients_for_running_loop()

    resolved = asyncio.run(go())
    assert (resolved.provider, resolved.model_name, resolved.model_settings.temperature) == (chosen, "fake-model", 1)
    assert asyncio.run(go(workspace=other.workspace)).provider == foreign
    with pytest.raises(NotFoundError):
        asyncio.run(go(provider_id=foreign.pk))
