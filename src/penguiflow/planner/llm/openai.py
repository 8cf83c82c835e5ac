"""An OpenAI-compatible Chat Completions client on httpx, with native tool calling.

``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``) are read when the first
request is made, not at construction: a planner can be built (and tested offline) without a key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import httpx

from penguiflow.errors import ConfigurationError
from penguiflow.planner.errors import LLMAuthenticationError, LLMError, LLMResponseError
from penguiflow.planner.llm.base import LLMReply, Message, ToolCall, ToolSchema, Usage

__all__ = ["OpenAIChatClient", "decode_name", "encode_name"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CODES = {".": "--", "-": "-_"}  # every other character: "-u" + 4 hex digits ("-U" + 6 beyond the BMP)
_MAX = 64
_DIGEST_CHARS = 26  # 130 bits of SHA-256 in base32 (a-z, 2-7: valid in function names)


def encode_name(name: str) -> str:
    """A function name OpenAI accepts (``^[a-zA-Z0-9_-]{1,64}$``) for a catalog name, injective by construction.

    Letters, digits and ``_`` are kept; ``.`` becomes ``--``, ``-`` becomes ``-_`` and any other character
    ``-u`` and 4 hex digits (``-U`` and 6 beyond the BMP): every ``-`` starts a code, so the name can be read
    back and two names never share an encoding (``github.create_issue`` → ``github--create_issue``; a name
    of letters, digits and ``_`` passes unchanged). An encoding longer than 64 characters keeps its first 36
    and ends in ``-h`` and 130 bits of the name's SHA-256 — the only case that rests on a hash, and the OpenAI
    client still refuses a catalog whose encodings collide.
    """
    parts: list[str] = []
    for char in name:
        if char in _PLAIN:
            parts.append(char)
        elif char in _CODES:
            parts.append(_CODES[char])
        elif ord(char) <= 0xFFFF:
            parts.append(f"-u{ord(char):04x}")
        else:
            parts.append(f"-U{ord(char):06x}")
    encoded = "".join(parts)
    if 0 < len(encoded) <= _MAX:
        return encoded
    digest = base64.b32encode(hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()).decode()
    head, budget = [], _MAX - 2 - _DIGEST_CHARS
    for part in parts:  # whole codes only, so the head stays readable as a prefix of the name
        if budget < len(part):
            break
        head.append(part)
        budget -= len(part)
    return "".join(head) + "-h" + digest[:_DIGEST_CHARS].lower()


def decode_name(function_name: str, names: dict[str, str]) -> str:
    """The catalog name for ``function_name`` (``names`` maps encoded → original); unknown names pass unchanged,
    so the planner reports them to the LLM as unknown tools."""
    return names.get(function_name, function_name)


class OpenAIChatClient:
    """``POST {base_url}/chat/completions`` with the catalog as ``tools``.

    ``api_key`` and ``base_url`` default to ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` read at request time.
    ``http_client`` lets an application share its own ``httpx.AsyncClient`` (then it also closes it).
    """

    provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        temperature: float | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self._api_key = api_key
        self._base_url = base_url
        self.timeout_s = timeout_s
        self.temperature = temperature
        self._client = http_client
        self._owns_client = http_client is None

    def __repr__(self) -> str:  # never the key
        return f"OpenAIChatClient(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def base_url(self) -> str:
        return (self._base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    def _key(self) -> str:
        key = self._api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise LLMAuthenticationError(
                f"no API key for model {self.model!r}: set OPENAI_API_KEY (or pass api_key=, or llm=<client>)"
            )
        return key

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> LLMReply:
        key = self._key()
        names = {encode_name(tool.name): tool.name for tool in tools}
        if len(names) != len({tool.name for tool in tools}):  # only two >64-character names sharing a SHA-256
            raise ConfigurationError("catalog", "two tool names encode to one function name; rename one")
        body: dict[str, Any] = {"model": self.model, "messages": [_encode_message(m) for m in messages]}
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": encode_name(tool.name),
                        "description": tool.description,
                        "parameters": tool.parameters or {"type": "object", "properties": {}},
                    },
                }
                for tool in tools
            ]
            body["parallel_tool_calls"] = True
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        url = f"{self.base_url}/chat/completions"
        try:
            response = await self._client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError as exc:
            # The exception's type and the URL only: the request (and so the key) is never quoted.
            raise LLMError(f"{self.model}: request to {url} failed: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise LLMAuthenticationError(
                f"{self.model}: the provider refused the API key ({response.status_code})"
            )
        if response.status_code >= 400:
            raise LLMResponseError(
                f"{self.model}: HTTP {response.status_code}: {_error_message(response)}",
                status_code=response.status_code,
            )
        try:
            data = response.json()
            return _decode_reply(data, names)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMResponseError(f"{self.model}: not a Chat Completions reply ({exc})") from None


def _encode_message(message: Message) -> Message:
    calls = message.get("tool_calls")
    if not calls:
        return message
    encoded = dict(message)
    encoded["tool_calls"] = [
        {**call, "function": {**call["function"], "name": encode_name(call["function"]["name"])}}
        for call in calls
    ]
    return encoded


def _decode_reply(data: dict[str, Any], names: dict[str, str]) -> LLMReply:
    message = data["choices"][0]["message"]
    calls = tuple(
        ToolCall(
            id=str(call.get("id") or f"call_{index}"),
            name=decode_name(_text(call["function"]["name"], "a tool call's function name"), names),
            arguments=_arguments(call["function"].get("arguments")),
        )
        for index, call in enumerate(message.get("tool_calls") or ())
    )
    usage = None
    if isinstance(data.get("usage"), dict):
        usage = Usage(
            int(data["usage"].get("prompt_tokens") or 0), int(data["usage"].get("completion_tokens") or 0)
        )
    return LLMReply(
        content=_content(message.get("content")),
        tool_calls=calls,
        usage=usage,
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        raw=data,
    )


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} is a {type(value).__name__}, not a string")
    return value


def _arguments(value: Any) -> dict[str, Any] | str:
    """A tool call's arguments as sent: JSON text (the wire format) or, from lenient servers, an object. Anything
    else is passed on as text, so the planner reports it to the LLM as arguments that are not a JSON object."""
    if value is None:
        return "{}"
    if isinstance(value, str | dict):
        return value
    return json.dumps(value)


def _content(value: Any) -> str | None:
    """The reply's text: a string, or the text parts of a list of content parts (newer servers)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part["text"]
            for part in value
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    raise TypeError(f"the message content is a {type(value).__name__}, not text")


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message or response.reason_phrase)[:200]
