"""What the HTTP transport puts on the wire for an OpenAPI document, read at a real server on 127.0.0.1 that
records each request's raw target, headers and body: the parameter styles, bodies by media type, nullable and
required-empty bodies, YAML documents, security schemes, redirects and responses."""

from __future__ import annotations

import base64
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from penguiflow.errors import ToolRedirectError, ToolValidationError
from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from penguiflow.tools.transports.http import OpenAPIError
from tests.reliability.servers import Route, ScriptedHttpServer

_ids = itertools.count()
NO_RETRY = RetryPolicy(max_attempts=1)


def param(name: str, where: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "schema": schema,
        **({"required": True} if where == "path" else {}),
        **extra,
    }


ARRAY = {"type": "array", "items": {"type": "string"}}
OBJECT = {"type": "object", "properties": {"R": {"type": "integer"}, "G": {"type": "integer"}}}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "wire", "version": "1"},
    "components": {
        "securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
        "schemas": {
            "Issue": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "readOnly": True},
                    "title": {"type": "string"},
                    "milestone": {"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True},
                },
            }
        },
    },
    "security": [{"key": []}],
    "paths": {
        "/simple/{a}/{o}/{oe}": {
            "get": {
                "operationId": "path_simple",
                "parameters": [
                    param("a", "path", ARRAY),
                    param("o", "path", OBJECT),
                    param("oe", "path", OBJECT, explode=True),
                ],
            }
        },
        "/label/{l}{le}": {
            "get": {
                "operationId": "path_label",
                "parameters": [
                    param("l", "path", ARRAY, style="label"),
                    param("le", "path", ARRAY, style="label", explode=True),
                ],
            }
        },
        "/matrix/{m}{me}{mo}": {
            "get": {
                "operationId": "path_matrix",
                "parameters": [
                    param("m", "path", ARRAY, style="matrix"),
                    param("me", "path", ARRAY, style="matrix", explode=True),
                    param("mo", "path", OBJECT, style="matrix", explode=True),
                ],
            }
        },
        "/users/{id}/profile": {
            "get": {"operationId": "profile", "parameters": [param("id", "path", {"type": "string"})]}
        },
        "/query": {
            "get": {
                "operationId": "query",
                "parameters": [
                    param("flag", "query", {"type": "boolean"}),
                    param("form", "query", ARRAY),
                    param("csv", "query", ARRAY, explode=False),
                    param("space", "query", ARRAY, style="spaceDelimited"),
                    param("pipe", "query", ARRAY, style="pipeDelimited"),
                    param("color", "query", OBJECT, explode=False),
                    param("spread", "query", {"type": "object", "properties": {"x": {"type": "integer"}}}),
                    param(
                        "created",
                        "query",
                        {"type": "object", "properties": {"gte": {"type": "integer"}}},
                        style="deepObject",
                        explode=True,
                    ),
                    param("expand", "query", ARRAY, style="deepObject", explode=True),
                    param("raw", "query", {"type": "string"}, allowReserved=True),
                    param("plain", "query", {"type": "string"}),
                ],
            }
        },
        "/headers": {
            "get": {
                "operationId": "headers",
                "parameters": [
                    param("X-Ids", "header", ARRAY),
                    param("X-Obj", "header", OBJECT, explode=True),
                    param("session", "cookie", {"type": "string"}),
                    param("ids", "cookie", ARRAY, explode=False),
                ],
            }
        },
        "/issues/{n}": {
            "patch": {
                "operationId": "update_issue",
                "parameters": [param("n", "path", {"type": "integer"})],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Issue"}}},
                },
            }
        },
        "/choice": {
            "post": {
                "operationId": "choice",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                                "oneOf": [{"required": ["id"]}, {"required": ["name"]}],
                            }
                        }
                    },
                },
            }
        },
        "/customers": {
            "post": {
                "operationId": "create_customer",
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "encoding": {
                                "metadata": {"style": "deepObject", "explode": True},
                                "items": {"style": "deepObject", "explode": True},
                            },
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "email": {"type": "string"},
                                    "metadata": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "items": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {"price": {"type": "string"}},
                                        },
                                    },
                                    "tags": ARRAY,
                                    "live": {"type": "boolean"},
                                    "extra": {"type": "object"},
                                },
                            },
                        },
                        "application/xml": {"schema": {"type": "object"}},
                    }
                },
            },
            "get": {
                "operationId": "list_customers",
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {"type": "object", "properties": {}, "additionalProperties": False}
                        }
                    }
                },
            },
        },
        "/files": {
            "post": {
                "operationId": "upload",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "purpose": {"type": "string"},
                                    "file": {"type": "string", "format": "binary"},
                                },
                            }
                        }
                    },
                },
            }
        },
        "/raw": {
            "put": {
                "operationId": "put_raw",
                "requestBody": {"required": True, "content": {"application/octet-stream": {}}},
            },
            "post": {
                "operationId": "post_text",
                "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}},
            },
        },
        "/xml-only": {
            "post": {
                "operationId": "xml_only",
                "requestBody": {
                    "required": True,
                    "content": {"application/xml": {"schema": {"type": "object"}}},
                },
            }
        },
        "/redirect/same": {"get": {"operationId": "redirect_same"}, "post": {"operationId": "redirect_post"}},
        "/redirect/away": {"get": {"operationId": "redirect_away"}},
        "/landing": {"get": {"operationId": "landing"}},
        "/binary": {"get": {"operationId": "binary"}},
        "/empty": {"delete": {"operationId": "empty"}},
    },
}


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[ScriptedHttpServer]:
    with ScriptedHttpServer({"/landing": Route({"where": "elsewhere"})}) as server:
        yield server


@pytest.fixture(scope="module")
def api(elsewhere: ScriptedHttpServer) -> Iterator[ScriptedHttpServer]:
    server = ScriptedHttpServer(default=Route({"ok": True}))
    server.routes.update(
        {
            "/openapi.json": Route(DOCUMENT),
            "/openapi.yaml": Route(yaml.safe_dump(DOCUMENT).encode(), content_type="application/yaml"),
            "/redirect/same": Route(b"", status=302, headers={"Location": "/landing"}),
            "/redirect/away": Route(b"", status=302, headers={"Location": f"{elsewhere.url}/landing"}),
            "/landing": Route({"where": "here"}),
            "/binary": Route(b"\x89PNG\r\n\x00\x01", content_type="image/png"),
            "/empty": Route(b"", status=204),
        }
    )
    with server:
        yield server


def node(api: ScriptedHttpServer, **overrides: Any) -> ToolNode:
    fields: dict[str, Any] = {
        "name": f"wire{next(_ids)}",
        "transport": TransportType.HTTP,
        "connection": api.url,
        "retry_policy": NO_RETRY,
        "timeout_s": 5.0,
        "auth_type": AuthType.API_KEY,
        "auth_config": {"value": "qk-SECRET-9876"},
    }
    fields.update(overrides)
    return ToolNode(ExternalToolConfig(**fields))


async def sent(
    api: ScriptedHttpServer, tool: str, arguments: dict[str, Any], **overrides: Any
) -> tuple[str, dict[str, str], bytes]:
    """``(raw target, headers, body)`` of the request one call made."""
    async with node(api, **overrides) as n:
        before = len(api.targets)
        await n.call(tool, arguments)
    (_, target), *_ = api.targets[before:]
    _, headers, body = api.requests[before]
    return target, headers, body


async def test_path_styles(api: ScriptedHttpServer) -> None:
    target, _, _ = await sent(
        api, "path_simple", {"a": ["x", "y"], "o": {"R": 1, "G": 2}, "oe": {"R": 1, "G": 2}}
    )
    assert target.startswith("/simple/x,y/R,1,G,2/R=1,G=2?")
    target, _, _ = await sent(api, "path_label", {"l": ["x", "y"], "le": ["x", "y"]})
    assert target.startswith("/label/.x,y.x.y?")
    target, _, _ = await sent(api, "path_matrix", {"m": ["x", "y"], "me": ["x", "y"], "mo": {"R": 1, "G": 2}})
    assert target.startswith("/matrix/;m=x,y;me=x;me=y;R=1;G=2?")


async def test_path_values_are_encoded_and_dot_segments_refused(api: ScriptedHttpServer) -> None:
    target, _, _ = await sent(api, "profile", {"id": "a/b c?d"})
    assert target.startswith("/users/a%2Fb%20c%3Fd/profile?")
    async with node(api) as n:
        before = len(api.targets)
        for value in ("..", ".", "%2e%2e", "%252E%252E", "a/../b"):
            with pytest.raises(ToolValidationError, match="'id'"):
                await n.call("profile", {"id": value})
        assert len(api.targets) == before  # never sent


async def test_query_styles_booleans_and_allow_reserved(api: ScriptedHttpServer) -> None:
    arguments = {
        "flag": False,
        "form": ["a", "b"],
        "csv": ["a", "b"],
        "space": ["a", "b"],
        "pipe": ["a", "b"],
        "color": {"R": 100, "G": 200},
        "spread": {"x": 1},
        "created": {"gte": 1690000000},
        "expand": ["data.customer", "data.invoice"],
        "raw": "a/b:c?d",
        "plain": "a/b&c d",
    }
    target, _, _ = await sent(api, "query", arguments)
    query = target.split("?", 1)[1].split("&")
    assert query[:-1] == [
        "flag=false",
        "form=a",
        "form=b",
        "csv=a%2Cb",
        "space=a%20b",
        "pipe=a%7Cb",
        "color=R%2C100%2CG%2C200",
        "x=1",
        "created%5Bgte%5D=1690000000",
        "expand%5B0%5D=data.customer",
        "expand%5B1%5D=data.invoice",
        "raw=a/b:c?d",
        "plain=a%2Fb%26c%20d",
    ]
    assert query[-1] == "api_key=qk-SECRET-9876"  # the document's apiKey scheme: in the query


async def test_header_and_cookie_parameters(api: ScriptedHttpServer) -> None:
    _, headers, _ = await sent(
        api, "headers", {"X-Ids": ["1", "2"], "X-Obj": {"R": 1, "G": 2}, "session": "s1", "ids": ["3", "4"]}
    )
    assert headers["x-ids"] == "1,2" and headers["x-obj"] == "R=1,G=2"
    assert headers["cookie"] == "session=s1; ids=3,4"
    async with node(api) as n:
        before = len(api.targets)
        for bad in ("a\r\nX-Evil: 1", "a\nb", "nul\x00", "snow☃"):
            with pytest.raises(ToolValidationError, match="X-Ids"):
                await n.call("headers", {"X-Ids": [bad]})
        assert len(api.targets) == before


async def test_nullable_read_only_and_required_empty_body(api: ScriptedHttpServer) -> None:
    async with node(api) as n:
        schema = n.get_tool("update_issue").input_schema
        assert "id" not in schema["properties"]  # readOnly: the server's, not the caller's
        before = len(api.requests)
        await n.call("update_issue", {"n": 1, "milestone": None})  # GitHub's documented way to clear it
        await n.call("update_issue", {"n": 2})  # a required body with no field given: still sent
    (_, first, body1), (_, _, body2) = api.requests[before:]
    assert json.loads(body1) == {"milestone": None} and first["content-type"] == "application/json"
    assert json.loads(body2) == {}


async def test_body_level_one_of_is_kept(api: ScriptedHttpServer) -> None:
    async with node(api) as n:
        assert n.get_tool("choice").input_schema["properties"]["body"]["oneOf"]
        before = len(api.requests)
        with pytest.raises(ToolValidationError, match="oneOf"):
            await n.call("choice", {"body": {"id": 1, "name": "both"}})
        await n.call("choice", {"body": {"id": 1}})
    assert len(api.requests) == before + 1


async def test_form_bodies_follow_the_encoding_object(api: ScriptedHttpServer) -> None:
    arguments = {
        "email": "a@b.co",
        "metadata": {"order_id": "6735"},
        "items": [{"price": "price_1"}],
        "tags": ["x", "y"],
        "live": True,
        "extra": {"k": 1},
    }
    _, headers, body = await sent(api, "create_customer", arguments)
    assert headers["content-type"] == "application/x-www-form-urlencoded"  # preferred over XML
    assert body.decode().split("&") == [
        "email=a%40b.co",
        "metadata%5Border_id%5D=6735",
        "items%5B0%5D%5Bprice%5D=price_1",
        "tags=x",
        "tags=y",
        "live=true",
        "extra=%7B%22k%22%3A1%7D",  # no style: the specification's default for an object, JSON text
    ]
    # Stripe's GETs declare an empty optional form body: still a tool, and no body is sent
    _, headers, body = await sent(api, "list_customers", {})
    assert body == b"" and "content-type" not in headers


async def test_multipart_octet_stream_and_text_bodies(api: ScriptedHttpServer) -> None:
    _, headers, body = await sent(
        api, "upload", {"purpose": "dispute", "file": base64.b64encode(b"\x00PDF").decode()}
    )
    assert headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="purpose"\r\n\r\ndispute\r\n' in body
    assert (
        b'name="file"; filename="file"\r\nContent-Type: application/octet-stream\r\n\r\n\x00PDF\r\n' in body
    )
    _, headers, body = await sent(api, "put_raw", {"body": base64.b64encode(b"\x01\x02").decode()})
    assert body == b"\x01\x02" and headers["content-type"] == "application/octet-stream"
    _, headers, body = await sent(api, "post_text", {"body": "hello"})
    assert body == b"hello" and headers["content-type"] == "text/plain"


async def test_unsupported_media_types_are_skipped_with_a_warning(
    api: ScriptedHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "penguiflow.tools.http")
    async with node(api) as n:
        names = {entry.name.split(".", 1)[1] for entry in n.get_tools()}
        skipped = n.transport.skipped  # type: ignore[union-attr]
    assert "xml_only" not in names and "create_customer" in names
    assert skipped == {"unsupported request body media type (application/xml)": 1}
    assert any("xml_only" in r.getMessage() and "application/xml" in r.getMessage() for r in caplog.records)
    everything = {"openapi": "3.1.0", "info": {}, "paths": {"/x": DOCUMENT["paths"]["/xml-only"]}}
    with (
        ScriptedHttpServer({"/openapi.json": Route(everything)}) as only_xml,
        pytest.raises(OpenAPIError, match="every operation was skipped"),
    ):
        await node(only_xml, auth_type=AuthType.NONE, auth_config={}).connect()


async def test_yaml_documents_and_swagger_2(api: ScriptedHttpServer) -> None:
    async with node(api, openapi_url=f"{api.url}/openapi.yaml") as n:
        assert len(n.get_tools()) == len([1 for item in DOCUMENT["paths"].values() for _ in item]) - 1
    swagger = r"Swagger '2\.0' document; convert it to OpenAPI 3"
    with (
        ScriptedHttpServer({"/openapi.json": Route({"swagger": "2.0", "paths": {}})}) as old,
        pytest.raises(OpenAPIError, match=swagger),
    ):
        await node(old, auth_type=AuthType.NONE, auth_config={}).connect()


@pytest.mark.parametrize(
    ("scheme", "auth", "expect"),
    [
        (
            {"type": "apiKey", "in": "header", "name": "X-Key"},
            {"value": "k-123456"},
            ("header", "x-key", "k-123456"),
        ),
        (
            {"type": "apiKey", "in": "cookie", "name": "sid"},
            {"value": "k-123456"},
            ("header", "cookie", "sid=k-123456"),
        ),
        (
            {"type": "http", "scheme": "bearer"},
            {"value": "k-123456"},
            ("header", "authorization", "Bearer k-123456"),
        ),
    ],
    ids=["header", "cookie", "bearer"],
)
async def test_api_keys_go_where_the_document_says(
    scheme: dict[str, Any], auth: dict[str, str], expect: Any
) -> None:
    document = {
        "openapi": "3.1.0",
        "info": {},
        "components": {"securitySchemes": {"s": scheme}},
        "paths": {"/me": {"get": {"operationId": "me"}}},
    }
    with ScriptedHttpServer({"/openapi.json": Route(document), "/me": Route({"ok": True})}) as server:
        async with node(server, auth_config=auth) as n:
            await n.call("me", {})
        _, headers, _ = server.requests[-1]
        assert headers[expect[1]] == expect[2]
        assert "k-123456" not in server.targets[-1][1]


async def test_basic_auth() -> None:
    document = {"openapi": "3.0.0", "info": {}, "paths": {"/me": {"get": {"operationId": "me"}}}}
    with ScriptedHttpServer({"/openapi.json": Route(document), "/me": Route({"ok": True})}) as server:
        config = {"auth_type": AuthType.BASIC, "auth_config": {"username": "sk_test_1", "password": ""}}
        async with node(server, **config) as n:
            await n.call("me", {})
    assert server.requests[-1][1]["authorization"] == "Basic " + base64.b64encode(b"sk_test_1:").decode()


async def test_redirects(api: ScriptedHttpServer, elsewhere: ScriptedHttpServer) -> None:
    async with node(api) as n:
        assert await n.call("redirect_same", {}) == {"where": "here"}
        assert "api_key=qk-SECRET-9876" in api.targets[-1][1]  # same origin: still authenticated
        assert await n.call("redirect_away", {}) == {"where": "elsewhere"}
        target = elsewhere.targets[-1][1]
        assert target == "/landing" and "qk-SECRET" not in repr(elsewhere.requests[-1])
        with pytest.raises(ToolRedirectError) as info:
            await n.call("redirect_post", {})
    assert info.value.status_code == 302 and info.value.location == "/landing"


async def test_responses_binary_text_and_204(api: ScriptedHttpServer) -> None:
    async with node(api) as n:
        assert await n.call("binary", {}) == {
            "media_type": "image/png",
            "base64": base64.b64encode(b"\x89PNG\r\n\x00\x01").decode(),
        }
        assert await n.call("empty", {}) is None


async def test_a_query_key_never_reaches_errors_or_logs(
    api: ScriptedHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with node(api) as n:
        await n.call("landing", {})
        with pytest.raises(Exception) as info:
            await n.call("xml_only_missing", {})  # not a tool: a typed error
    assert "qk-SECRET-9876" not in str(info.value)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx's own line, redacted
    for record in caplog.records:
        assert "qk-SECRET-9876" not in record.getMessage()
