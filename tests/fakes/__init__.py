"""Test doubles for paid model APIs. Nothing else in the stack is faked."""

from tests.fakes.openai_server import Drop, Error, FakeOpenAIServer, Reply, ToolCall

__all__ = ["Drop", "Error", "FakeOpenAIServer", "Reply", "ToolCall"]
