"""The bundled model for real: start the llama.cpp sidecar and get an answer from SmolLM2 through the SDK."""

from __future__ import annotations

import asyncio
import socket

import pytest
from agents import Agent, RunConfig, Runner
from django.test import override_settings

from providers_app.clients import close_clients_for_running_loop
from providers_app.local_model import gguf_path, start_sidecar
from providers_app.runtime import build_model
from providers_app.selectors import provider_for_run
from providers_app.services import provider_test

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sidecar_url(tmp_path_factory):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = start_sidecar(port=port, log_path=tmp_path_factory.mktemp("local") / "model.log")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_model_file_ships_in_the_package():
    path = gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def test_a_real_answer_through_the_sdk(team, sidecar_url):
    with override_settings(LOCAL_MODEL_BASE_URL=sidecar_url):
        provider = provider_for_run(workspace=team.workspace)
        assert provider.type == "local"

        async def ask(stream: bool):
            try:
                resolved = build_model(provider=provider, settings={"temperature": 0, "max_tokens": 40})
                agent = Agent(
                    name="Helper",
                    instructions="Answer in one short sentence.",
                    model=resolved.model,
                    model_settings=resolved.model_settings,
                )
                run_config = RunConfig(tracing_disabled=True)
                if stream:
                    result = Runner.run_streamed(agent, "What is the capital of France?", run_config=run_config)
                    deltas = [e async for e in result.stream_events() if e.type == "raw_response_event"]
                    assert len(deltas) > 3  # it really streamed token by token
                    return result
                return await Runner.run(agent, "What is the capital of France?", run_config=run_config)
            finally:
                await close_clients_for_running_loop()

        for stream in (False, True):
            result = asyncio.run(ask(stream))
            answer = result.final_output
            assert isinstance(answer, str)
            assert len(answer.strip()) > 0
            assert "Paris" in answer
            usage = result.context_wrapper.usage
            assert usage.requests == 1
            if not stream:
                # llama-cpp-python's server reports usage on plain answers only: it ignores
                # stream_options.include_usage, so streamed answers carry no token counts.
                assert usage.input_tokens > 0
                assert usage.output_tokens > 0


def test_the_connection_test_sees_the_running_model(team, sidecar_url):
    with override_settings(LOCAL_MODEL_BASE_URL=sidecar_url):
        result = provider_test(actor=team, provider_id=None)
    assert result.ok, result.message
    assert result.models == ["smollm2"]
