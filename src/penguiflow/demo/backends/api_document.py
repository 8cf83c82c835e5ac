"""The OpenAPI 3.1 document the demo HTTP API publishes at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]


def openapi_document(title: str = "penguiflow demo API", *, chaos: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document the server publishes at ``/openapi.json`` (with ``chaos``: and the ``chaos``
    operation, which a server started with a :class:`ChaosConfig` serves)."""

    def query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": required,
            "schema": schema,
            "description": description,
        }

    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": {
            "/echo": {
                "post": {
                    "operationId": "echo",
                    "summary": "Return the JSON body as received.",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "maxLength": 64},
                            "description": "Sent as a request header (as Stripe's API takes it).",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
                    },
                    "responses": ok,
                }
            },
            "/items/{item_id}": {
                "get": {
                    "operationId": "get_item",
                    "summary": "Fetch one item by id.",
                    "parameters": [
                        {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": ok,
                }
            },
            "/slow": {
                "get": {
                    "operationId": "slow",
                    "summary": "Answer after `ms` milliseconds.",
                    "parameters": [
                        query("ms", {"type": "integer", "minimum": 0, "maximum": 60000}, "Delay.", True)
                    ],
                    "responses": ok,
                }
            },
            "/flaky": {
                "get": {
                    "operationId": "flaky",
                    "summary": "Fail with 503 the first `failures` times per `key`, then answer.",
                    "parameters": [
                        query("key", {"type": "string"}, "Counts attempts separately per key.", True),
                        query("failures", {"type": "integer", "minimum": 0, "default": 2}, "503s first."),
                    ],
                    "responses": ok,
                }
            },
            "/rate_limited": {
                "get": {
                    "operationId": "rate_limited",
                    "summary": "429 with Retry-After when more requests than the threshold run at once.",
                    "parameters": [query("ms", {"type": "integer", "minimum": 0}, "Hold time.")],
                    "responses": ok,
                }
            },
            "/capacity": {
                "get": {
                    "operationId": "capacity",
                    "summary": "A backend with a hidden, changing capacity: served in a fixed time up to it, "
                    "queued above it, 429 with Retry-After above twice it.",
                    "parameters": [
                        query("lane", {"type": "string"}, "Backends are separate per lane (default: one)."),
                    ],
                    "responses": ok,
                }
            },
            "/hang": {
                "get": {
                    "operationId": "hang",
                    "summary": "Never answers (until the client gives up or the server stops).",
                    "responses": ok,
                }
            },
            "/not_found": {"get": {"operationId": "not_found", "summary": "Always 404.", "responses": ok}},
            "/unauthorized": {
                "get": {
                    "operationId": "unauthorized",
                    "summary": "Always 401, quoting the credentials received (as careless servers do).",
                    "responses": ok,
                }
            },
        },
        "components": {
            "schemas": {
                "Message": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string", "description": "Text to echo."},
                        "repeat": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    },
                    "required": ["message"],
                    "additionalProperties": False,
                }
            }
        },
    }
    if chaos:
        document["paths"]["/chaos"] = {
            "get": {
                "operationId": "chaos",
                "summary": "Answer after `ms` milliseconds, or fail at random: 429, 503, stall, connection reset.",
                "parameters": [
                    query("key", {"type": "string"}, "Identifies the call; faults are drawn per key.", True),
                    query("ms", {"type": "integer", "minimum": 0, "maximum": 60000}, "Delay of a success."),
                ],
                "responses": ok,
            }
        }
    return document
