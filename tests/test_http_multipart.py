"""``multipart/form-data`` request bodies against a real server on 127.0.0.1 that parses what it receives
(Starlette's form parser, python-multipart): files given as ``bytes`` or as base64 text go out as file parts —
with a ``filename`` and the media type the document gives — beside the plain and JSON fields. Stripe's
``POST /v1/files`` is taken from its published document; the other operations exercise the Encoding Object's
``contentType`` (one type, a list), arrays of files, ``format: byte`` and OAS 3.1's ``contentMediaType``."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from penguiflow.errors import ToolValidationError
from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from tests.support.asgi_server import serve_asgi
from tests.support.openapi_mock import published

PDF = b"%PDF-1.4\n\x00\xff penguiflow\r\n--not-a-boundary\r\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00"
Part = tuple[str, str | None, str | None, bytes | str]  # name, filename, content type, contents

AVATARS = {
    "operationId": "upload_avatar",
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "avatar": {"type": "string", "format": "binary", "description": "The picture."},
                        "photos": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "scan": {"type": "string", "format": "byte"},
                        "notes": {"type": "object", "properties": {"a": {"type": "string"}}},
                        "label": {"type": "string"},
                    },
                },
                "encoding": {
                    "avatar": {"contentType": "image/png"},
                    "photos": {"contentType": "image/png, image/*"},
                },
            }
        },
    },
    "responses": {"200": {"description": "ok"}},
}
SHEETS = {  # OAS 3.1: a file is a string with a contentMediaType, no format
    "operationId": "upload_sheet",
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"sheet": {"type": "string", "contentMediaType": "text/csv"}}}
            }
        }
    },
    "responses": {"200": {"description": "ok"}},
}  # fmt: skip


def _document(version: str, paths: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": version, "info": {"title": "uploads", "version": "1"}, "paths": paths}


class Uploads:
    """The server: the documents, and every multipart request's parts as its parser read them."""

    def __init__(self) -> None:
        stripe = copy.deepcopy(published("stripe-2023-08-16.json")["paths"]["/v1/files"]["post"])
        stripe.pop("servers", None)  # files.stripe.com: here, the test's own server
        self.documents = {
            "/openapi.json": _document(
                "3.0.3", {"/v1/files": {"post": stripe}, "/avatars": {"post": AVATARS}}
            ),
            "/openapi31.json": _document("3.1.0", {"/sheets": {"post": SHEETS}}),
        }
        self.received: list[list[Part]] = []

    async def document(self, request: Request) -> JSONResponse:
        return JSONResponse(self.documents[request.url.path])

    async def upload(self, request: Request) -> JSONResponse:
        parts: list[Part] = []
        async with request.form() as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):  # the parser's word: a part with a filename
                    parts.append((name, value.filename, value.content_type, await value.read()))
                else:
                    parts.append((name, None, None, value))
        self.received.append(parts)
        return JSONResponse({"id": "file_1"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/openapi.json", self.document),
                Route("/openapi31.json", self.document),
                *(
                    Route(path, self.upload, methods=["POST"])
                    for path in ("/v1/files", "/avatars", "/sheets")
                ),
            ]
        )


@pytest.fixture(scope="module")
def uploads() -> Iterator[tuple[Uploads, str]]:
    server = Uploads()
    with serve_asgi(server.app()) as url:
        yield server, url


def node(url: str, document: str = "/openapi.json") -> ToolNode:
    return ToolNode(
        ExternalToolConfig(
            name="up",
            transport=TransportType.HTTP,
            connection=url,
            openapi_url=url + document,
            auth_type=AuthType.BEARER,
            auth_config={"token": "sk_test_penguiflow"},
            retry_policy=RetryPolicy(max_attempts=1),
            timeout_s=30.0,
        )
    )


async def _parts(uploads: tuple[Uploads, str], tool: str, arguments: dict[str, Any], **kw: Any) -> list[Part]:
    server, url = uploads
    async with node(url, **kw) as n:
        await n.call(f"up.{tool}", arguments)
    return server.received[-1]


@pytest.mark.parametrize("given", ["bytes", "base64"])
async def test_stripe_files_go_out_as_file_parts(uploads: tuple[Uploads, str], given: str) -> None:
    file: bytes | str = PDF if given == "bytes" else base64.b64encode(PDF).decode()
    arguments = {"file": file, "purpose": "dispute_evidence", "file_link_data": {"create": True}}
    assert await _parts(uploads, "PostFiles", arguments) == [
        ("file", "file", "application/octet-stream", PDF),
        ("purpose", None, None, "dispute_evidence"),
        ("file_link_data[create]", None, None, "true"),
    ]


async def test_a_file_argument_says_it_is_base64(uploads: tuple[Uploads, str]) -> None:
    _, url = uploads
    async with node(url) as n:
        stripe = n.get_tool("up.PostFiles").input_schema["properties"]["file"]
        avatars = n.get_tool("up.upload_avatar").input_schema["properties"]
    assert stripe["type"] == "string" and stripe["contentEncoding"] == "base64"
    assert stripe["description"].startswith("A file to upload.")
    assert stripe["description"].endswith("The file's contents, base64-encoded.")
    assert "format" not in stripe  # binary on the wire, base64 in the arguments
    assert avatars["avatar"]["contentMediaType"] == "image/png"
    assert avatars["photos"]["items"]["contentEncoding"] == "base64"
    assert "contentMediaType" not in avatars["photos"]["items"]  # a list of types names none
    assert avatars["label"] == {"type": "string"}


async def test_file_parts_take_the_media_type_the_document_gives(uploads: tuple[Uploads, str]) -> None:
    arguments = {
        "avatar": PNG,
        "photos": [PNG, base64.b64encode(b"\xff\xd8jpeg").decode()],
        "scan": base64.b64encode(PDF).decode(),
        "notes": {"a": "b"},
        "label": "me",
    }
    assert await _parts(uploads, "upload_avatar", arguments) == [
        ("avatar", "avatar", "image/png", PNG),
        # "image/png, image/*" names no one type to claim: the specification's default for bytes
        ("photos", "photos", "application/octet-stream", PNG),
        ("photos", "photos", "application/octet-stream", b"\xff\xd8jpeg"),
        ("scan", "scan", "application/octet-stream", PDF),
        ("notes", None, None, '{"a":"b"}'),
        ("label", None, None, "me"),
    ]


async def test_an_oas31_file_is_a_string_with_a_content_media_type(uploads: tuple[Uploads, str]) -> None:
    parts = await _parts(uploads, "upload_sheet", {"sheet": b"a,b\n1,2\n"}, document="/openapi31.json")
    assert parts == [("sheet", "sheet", "text/csv", b"a,b\n1,2\n")]


async def test_bytes_are_refused_where_the_schema_asks_for_text(uploads: tuple[Uploads, str]) -> None:
    _, url = uploads
    async with node(url) as n:
        with pytest.raises(ToolValidationError, match="'label'"):
            await n.call("up.upload_avatar", {"label": b"me"})
        with pytest.raises(ToolValidationError, match="'file' is not valid base64"):
            await n.call("up.PostFiles", {"file": "not base64!", "purpose": "dispute_evidence"})
