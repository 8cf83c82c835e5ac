"""The OpenAI-compatible client against a real local HTTP server speaking the Chat Completions wire format."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow.demo.backends.chat_completions import ChatCompletionsServer, completion
from penguiflow.planner import (
    LLMAuthenticationError,
    LLMResponseError,
    OpenAIChatClient,
    ReactPlanner,
    ToolSchema,
)
from penguiflow.planner.llm.openai import decode_name, encode_name
from penguiflow.telemetry import names
from penguiflow.tools import tool
from tests.support import otel

KEY = "sk-test-not-a-real-key-1234"


class ChatServer(ChatCompletionsServer):
    """A Chat Completions endpoint on 127.0.0.1: replies with tool calls for every tool offered (all in one
    reply) until it has seen tool results, then answers with what the tools returned."""

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        if results:
            message: dict[str, Any] = {"role": "assistant", "content": "results: " + ", ".join(results)}
        else:
            calls = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": t["function"]["name"], "arguments": json.dumps({"text": f"t{i}"})},
                }
                for i, t in enumerate(body.get("tools", []))
            ]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
        return completion({"model": body["model"] + "-0613"}, message, "tool_calls")


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


def test_tool_names_map_reversibly_to_valid_function_names() -> None:
    catalog = ["github.create_issue", "github_create_issue", "a" * 80, "stripe.refund", "plain-name_1"]
    encoded = [encode_name(name) for name in catalog]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) for name in encoded)
    assert len(set(encoded)) == len(catalog)
    assert encode_name("github_create_issue") == "github_create_issue"  # letters, digits, _ pass unchanged
    assert encode_name("github.create_issue") == "github--create_issue"
    mapping = dict(zip(encoded, catalog, strict=True))
    assert [decode_name(name, mapping) for name in encoded] == catalog


def test_crafted_names_never_collide_after_encoding() -> None:
    """Two catalog names can be crafted to meet under a replace-and-hash encoding (``a.`` became ``a__`` and 8 hex
    digits of its SHA-1, which is itself a valid name passed through unchanged). Here each character maps to a
    code no other character shares, so distinct names give distinct function names by construction."""
    digest = hashlib.sha1(b"a.").hexdigest()[:8]
    crafted = [
        "a.",
        f"a__{digest}",  # collided before
        "a.b",
        "a-b",
        "a_b",
        "a--b",
        "a-_b",
        "a__b",
        "a..b",
        "a-.b",
        "a.-b",
        "é",
        "-u00e9",
        "🐧",
        "-U01f427",
        "x" * 64,
        "x" * 65,
        "x" * 200,
        "x" * 200 + "y",
        "",
        "tool with spaces",
        "tool/with/slashes",
        "tool:colon",
    ]
    encoded = [encode_name(name) for name in crafted]
    assert len(set(encoded)) == len(crafted), [n for n in encoded if encoded.count(n) > 1]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) for name in encoded)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=2, max_size=8, unique=True))
def test_encoding_is_injective_on_any_catalog(names: list[str]) -> None:
    encoded = [encode_name(name) for name in names]
    assert len(set(encoded)) == len(names)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) for name in encoded)


async def test_planner_with_a_model_name_talks_chat_completions_to_openai_base_url(
    chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch, spans: Any
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.url)
    running = 0
    peak = 0

    async def upper(text: str) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return text.upper()

    first = tool(name=otel.unique("text.upper"), description="Upper-case a text.")(upper)
    second = tool(name=otel.unique("text.shout"), description="Shout a text.")(upper)
    model = otel.unique("gpt-4")
    planner = ReactPlanner(catalog=[first, second], llm=model)
    result = await planner.run("shout t0 and t1")
    await planner.aclose()

    assert (result.answer, result.reason) == ("results: T0, T1", "answered")
    calls = result.trajectory[0].calls
    assert [(c.tool, c.arguments, c.outcome) for c in calls] == [
        (first.name, {"text": "t0"}, "success"),
        (second.name, {"text": "t1"}, "success"),
    ]
    assert peak == 2  # the two tool_calls of one reply ran in parallel
    assert (result.usage.input_tokens, result.usage.output_tokens) == (84, 14)

    (headers, request), (_, follow_up) = chat_server.received
    assert headers["authorization"] == f"Bearer {KEY}"
    assert request["model"] == model
    functions = [t["function"] for t in request["tools"]]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", f["name"]) for f in functions)
    assert (
        functions[0]["description"] == "Upper-case a text." and functions[0]["parameters"]["type"] == "object"
    )
    assert [m["role"] for m in follow_up["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    assistant = follow_up["messages"][2]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == [f["name"] for f in functions]
    assert [m["tool_call_id"] for m in follow_up["messages"][3:]] == ["call_0", "call_1"]

    (chat, _) = otel.spans(f"chat {model}")
    assert chat.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == 42  # type: ignore[index]
    assert chat.attributes[names.GEN_AI_PROVIDER_NAME] == "openai"  # type: ignore[index]
    assert otel.histogram_count(names.LLM_DURATION, **{names.GEN_AI_REQUEST_MODEL: model}) == 2
    for span in otel.spans():
        assert KEY not in json.dumps(dict(span.attributes or {}))


async def test_a_missing_key_fails_at_the_first_llm_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never reached
    planner = ReactPlanner(catalog=[], llm="gpt-4")  # constructing is fine
    with pytest.raises(LLMAuthenticationError, match="OPENAI_API_KEY"):
        await planner.run("hello")


async def test_error_statuses_are_typed_and_never_quote_the_key(chat_server: ChatServer) -> None:
    client = OpenAIChatClient("gpt-4o-mini", api_key=KEY, base_url=chat_server.url)
    assert KEY not in repr(client)
    chat_server.status = 401
    with pytest.raises(LLMAuthenticationError) as auth:
        await client.complete([{"role": "user", "content": "hi"}], [])
    chat_server.status = 503
    with pytest.raises(LLMResponseError) as failed:
        await client.complete([{"role": "user", "content": "hi"}], [ToolSchema("a.b", "", {})])
    assert failed.value.status_code == 503 and "status 503" in str(failed.value)
    for error in (auth.value, failed.value):
        assert KEY not in str(error)
    await client.aclose()
    unreachable = OpenAIChatClient("gpt-4o-mini", api_key=KEY, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(Exception) as down:
        await unreachable.complete([{"role": "user", "content": "hi"}], [])
    assert type(down.value).__name__ == "LLMError" and KEY not in str(down.value)
    await unreachable.aclose()
