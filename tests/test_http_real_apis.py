"""The HTTP transport against the real API documents (Stripe 2023-08-16, GitHub REST from ``@octokit/openapi``),
served by Prism with ``--errors``: a validating mock that judges every request against the document and answers a
violation with a 4xx naming it.

Every operation of each document is discovered, and every one is called twice, with arguments generated from its
*argument schema* (only the required ones, then every optional one too): any request Prism rejects is a bug of
our schemas or our encoding, except the quirks listed below, each verified by hand. One Prism per document for
the module; the calls go out concurrently through one node (its own limit bounds them).

A second judge, openapi-core (:mod:`tests.support.openapi_judge`), then validates in one pass, in-process, the
very requests Prism received (the ``httpx.Request`` objects the transport sent) against the document as
published: Prism accepts any body whose schema it cannot compile (many of GitHub's), openapi-core judges them.
Its quirks are listed in :func:`judge_quirks`, each verified by hand; to show it judges those bodies, each JSON
body replaced by a JSON string must be rejected too, wherever the operation's schema says a type.

Needs Node and ``make tools``; without them the tests skip saying so, in CI (``PENGUIFLOW_REQUIRE_SERVERS=1``)
they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from penguiflow.errors import ToolStatusError
from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from penguiflow.tools.transports.http import HttpTransport
from tests.reliability.servers import Route, ScriptedHttpServer
from tests.support.openapi_judge import Judge, Rejection, mutants
from tests.support.openapi_mock import Prism, Unsatisfiable, example, published, trimmed

# A hang guard, not a speed claim: each every-operation test sends thousands of requests through Prism and then
# judges them in-process (~25 s on a quiet 2-core machine, 74 s at load 12, over 120 s with two suites running).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _sent(request: httpx.Request, where: str, name: str) -> bool:
    """Whether ``request`` carried ``name`` (or ``name[...]``) in its query or form body."""
    if where == "query":
        keys = [key for key, _ in request.url.params.multi_items()]
    else:
        keys = [key for key, _ in parse_qsl(request.content.decode("latin-1"), keep_blank_values=True)]
    return any(key == name or key.startswith(f"{name}[") for key in keys)


def _invented(violation: dict[str, Any], request: httpx.Request) -> bool:
    """Prism materialises every declared ``deepObject`` field as an empty object, sent or not, then reports its
    required properties missing ("Request body property features.card_issuing must have required property
    'requested'" for a body without ``features``). Verified by hand with curl: a form body of ``a=1`` to
    ``POST /v1/treasury/financial_accounts`` gets that violation. Only when we did not send the field."""
    location = violation.get("location", [])
    if violation.get("code") != "required" or len(location) < 3 or location[1] not in ("body", "query"):
        return False
    name = str(location[2]) + "".join(f"[{part}]" for part in location[3:])
    return not _sent(request, location[1], name)


def _unread(violation: dict[str, Any], request: httpx.Request) -> bool:
    """Prism does not read a deepObject value nested three deep (``features[subscription_update]
    [default_allowed_updates][0]=price``) and reports it missing though it was sent. Verified by hand with curl
    to ``POST /v1/billing_portal/configurations``: sent as above → "features.subscription_update must have
    required property 'default_allowed_updates'"; sent flat (``...[default_allowed_updates]=price``) it is read.
    Only when the request did carry the property."""
    location = violation.get("location", [])
    missing = re.search(r"required property '([^']+)'", violation.get("message", ""))
    if violation.get("code") != "required" or missing is None or len(location) < 3:
        return False
    name = str(location[2]) + "".join(f"[{part}]" for part in location[3:]) + f"[{missing.group(1)}]"
    return _sent(request, location[1], name)


# Violations Prism reports that are quirks of Prism, not of our encoding, each verified by hand:
QUIRKS: dict[str, tuple[Callable[[dict[str, Any], httpx.Request], bool], ...]] = {
    "stripe": (
        _invented,
        _unread,
        # Prism cannot read an array of objects in a form body ("Cannot deserialize JSON object array in form
        # data request body. Make sure the array is in JSON"): it wants JSON text where the document declares
        # deepObject, the brackets Stripe documents (line_items[0][price]=...) and we send. By hand: curl with
        # line_items[0][price]=p → 415 with this message.
        lambda violation, _: "Cannot deserialize JSON object array in form data" in violation["message"],
    ),
    "github": (),
}


# the whole message: any other error of the same value is in it too (joined by ";") and is not excused
_READ_ONLY = re.compile(r"Invalid (\w+ parameter: [^:;]+): Tried to write read-only property with [^;]*")


def _read_only_parameters(document: dict[str, Any]) -> set[str]:
    """``"<in> parameter: <name>"`` of every parameter whose schema is itself ``readOnly``."""
    schemas = document.get("components", {}).get("schemas", {})
    parameters = document.get("components", {}).get("parameters", {})
    found = set()
    for item in document["paths"].values():
        for operation in [item, *(op for op in item.values() if isinstance(op, dict))]:
            for param in operation.get("parameters", []) if isinstance(operation, dict) else ():
                param = parameters.get(param.get("$ref", "").rsplit("/", 1)[-1], param)
                schema = param.get("schema", {})
                schema = schemas.get(schema.get("$ref", "").rsplit("/", 1)[-1], schema)
                if schema.get("readOnly"):
                    found.add(f"{param['in']} parameter: {param['name']}")
    return found


def judge_quirks(api: Api) -> dict[str, Callable[[Rejection], bool]]:
    """What openapi-core reports that is a quirk of it or of the document, not of our encoding, each verified
    by hand (the judge's own reading of ``deepObject`` and of percent-encoded path variables is in
    :mod:`tests.support.openapi_judge`)."""
    read_only = _read_only_parameters(api.published)
    return {
        # GitHub's alert_number (code scanning, Dependabot, secret scanning alerts) is a path parameter whose
        # schema is the response field's, ``{"type": "integer", "readOnly": true}``; openapi-core's request
        # validator refuses any readOnly value it is given, parameters included, though OAS 3.0 makes readOnly
        # relevant to "properties" only (a required path parameter can never be left out). By hand:
        # GET /repos/o/r/code-scanning/alerts/1 → "Tried to write read-only property with 1"; with "x" instead
        # of 1 the cast error comes first, so the parameter is still judged as an integer.
        "read-only path parameter": lambda r: (
            (found := _READ_ONLY.fullmatch(r.message)) is not None and found.group(1) in read_only
        ),
    }


class Api:
    def __init__(
        self,
        name: str,
        prism: Prism,
        document: dict[str, Any],
        docs: ScriptedHttpServer,
        published: dict[str, Any],
    ) -> None:
        self.name = name
        self.prism = prism
        self.document = document  # what Prism serves and the transport reads: responses trimmed
        self.docs = docs
        self.published = published  # the document as published, which openapi-core judges by

    def node(self, **overrides: Any) -> ToolNode:
        fields: dict[str, Any] = {
            "name": self.name,
            "transport": TransportType.HTTP,
            "connection": self.prism.url,
            "openapi_url": f"{self.docs.url}/openapi.json",
            "max_concurrency": 8,
            "timeout_s": 60.0,
            "retry_policy": RetryPolicy(max_attempts=1),
        }
        if self.name == "stripe":
            fields.update(auth_type=AuthType.BEARER, auth_config={"token": "sk_test_penguiflow"})
        fields.update(overrides)
        return ToolNode(ExternalToolConfig(**fields))

    @property
    def operations(self) -> int:
        return sum(
            1
            for item in self.document["paths"].values()
            for method in item
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace")
        )


def _serve(name: str, file: str, tmp: Path) -> Iterator[Api]:
    document = trimmed(original := published(file))
    docs = ScriptedHttpServer({"/openapi.json": Route(json.dumps(document).encode())})
    with docs, Prism(document, tmp) as prism:
        yield Api(name, prism, document, docs, original)


@pytest.fixture(scope="module")
def stripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from _serve("stripe", "stripe-2023-08-16.json", tmp_path_factory.mktemp("stripe"))


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from _serve("github", "github-api.json", tmp_path_factory.mktemp("github"))


async def _conformance(api: Api) -> None:
    node = api.node()
    seen: list[tuple[str, str, list[dict[str, Any]]]] = []
    sent: list[httpx.Request] = []

    async def judged(response: httpx.Response) -> None:
        # Prism answers a violation with a status of the document's own (often its ``default`` response), so
        # the verdict is read where Prism always writes it: the ``sl-violations`` header.
        violations = json.loads(response.headers.get("sl-violations", "[]"))
        errors = [v for v in violations if v.get("severity") == "Error"]
        errors = [v for v in errors if not any(quirk(v, response.request) for quirk in QUIRKS[api.name])]
        seen.append((response.request.method, response.request.url.path, errors))
        sent.append(response.request)

    async with node:
        tools = node.get_tools()
        transport = node.transport
        assert isinstance(transport, HttpTransport) and transport.client is not None
        transport.client.event_hooks["response"].append(judged)
        # every operation is a tool (≥ 99 %; what is not is counted, by reason)
        assert len(tools) >= 0.99 * api.operations, (len(tools), api.operations, transport.skipped)
        calls: list[tuple[str, str, dict[str, Any]]] = []
        unsatisfiable: list[str] = []
        for entry in tools:
            schema = entry.input_schema
            defs = schema.get("$defs", {})
            for mode in ("minimal", "full"):
                try:
                    arguments = example(schema, defs, full=mode == "full")
                except Unsatisfiable:
                    unsatisfiable.append(entry.name)
                    continue
                calls.append((entry.name, mode, arguments))

        # Straight to the transport, after the registry's own check of the arguments, rather than through the
        # node's stack: ~1,700 tool names through the stack would fill the session's metric streams up to the
        # SDK's cardinality limit (2,000 per instrument) and starve every later test of its own series.
        gate = asyncio.Semaphore(8)

        async def one(tool: str, arguments: dict[str, Any]) -> BaseException | None:
            async with gate:
                try:
                    await node.registry.prepare(tool)
                    checked = node.registry.validate(tool, arguments)
                    await transport.call(tool.split(".", 1)[1], checked)
                except Exception as exc:  # collected: the verdict is Prism's, below
                    return exc
            return None

        outcomes = await asyncio.gather(*(one(tool, arguments) for tool, _, arguments in calls))
    assert not unsatisfiable, unsatisfiable
    assert len(calls) == 2 * len(tools)
    unsent = [
        f"{tool} ({mode}): {exc!r}"
        for (tool, mode, _), exc in zip(calls, outcomes, strict=True)
        if exc is not None and not isinstance(exc, ToolStatusError)
    ]
    _report(api, unsent=unsent)
    assert not unsent, unsent[:20]
    assert len(seen) >= len(calls)  # every call reached Prism (a followed redirect adds one)
    rejected = [f"{method} {path}: {error['message']}" for method, path, errors in seen for error in errors]

    # The second judge, openapi-core, on the very requests Prism saw, by the document as published.
    judge = Judge(api.published)
    verdicts = await asyncio.to_thread(judge.verdicts, sent, judge_quirks(api))
    second = [str(rejection) for rejection in verdicts.rejections]
    # ... and it does judge these bodies: each JSON one replaced by a JSON string is rejected, unless the
    # operation's schema says no type (then a string is valid).
    wrong = mutants(sent)
    caught = {
        id(rejection.request) for rejection in (await asyncio.to_thread(judge.verdicts, wrong)).rejections
    }
    accepted = [r for r in wrong if id(r) not in caught]
    unjudged = [f"{r.method} {r.url.path}" for r in accepted if judge.typed_body(r)]
    _report(
        api,
        prism=rejected,
        openapi_core=second,
        excused=[f"{quirk}: {rejection}" for quirk, rejection in verdicts.excused],
        elsewhere=verdicts.elsewhere,
        unjudged=unjudged,
    )
    print(
        f"{api.name}: Prism judged {len(seen)} requests, {len(rejected)} violations; openapi-core judged "
        f"{verdicts.judged}, {len(second)} rejected, {len(verdicts.excused)} excused "
        f"({', '.join(f'{n} x{c}' for n, c in Counter(q for q, _ in verdicts.excused).items()) or 'none'}), "
        f"{len(verdicts.elsewhere)} at an operation's own server; of {len(wrong)} wrong bodies "
        f"{len(wrong) - len(accepted)} rejected, {len(accepted) - len(unjudged)} valid (untyped schema), "
        f"{len(unjudged)} missed"
    )
    assert not rejected, f"{len(rejected)} violations in {len(seen)} requests:\n" + "\n".join(rejected[:60])
    assert verdicts.judged == len(sent)
    assert not second, f"openapi-core: {len(second)} rejected of {len(sent)}:\n" + "\n".join(second[:60])
    assert not unjudged, f"openapi-core accepted a string for a typed body: {unjudged[:20]}"


def _report(api: Api, **sections: list[str]) -> None:
    """Everything each judge said, to ``$PENGUIFLOW_PRISM_REPORT.<api>`` (when investigating), not only the
    first lines an assertion shows."""
    if os.environ.get("PENGUIFLOW_PRISM_REPORT"):
        text = "\n".join(
            f"---- {name} ({len(lines)})\n" + "\n".join(lines) for name, lines in sections.items()
        )
        Path(f"{os.environ['PENGUIFLOW_PRISM_REPORT']}.{api.name}").write_text(text)


async def test_stripe_every_operation_is_discovered_and_accepted_by_the_validator(stripe: Api) -> None:
    await _conformance(stripe)


async def test_github_every_operation_is_discovered_and_accepted_by_the_validator(github: Api) -> None:
    await _conformance(github)


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    [
        # what the old transport sent: an object query parameter as Python repr
        ("GET", "/v1/customers", None, "created=%7B%27gte%27%3A+1690000000%7D"),
        # what fastmcp's director sends for a deepObject form field: JSON text
        ("POST", "/v1/customers", b"metadata=%7B%22order_id%22%3A+%226735%22%7D", ""),
        ("GET", "/v1/customers", None, "limit=ten"),
    ],
)
async def test_the_stripe_validator_does_reject_wrong_encodings(
    stripe: Api, method: str, path: str, body: bytes | None, query: str
) -> None:
    """The judge judges: the encodings the issue reported as wrong are violations for this Prism."""
    headers = {
        "Authorization": "Bearer sk_test_penguiflow",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    async with httpx.AsyncClient() as client:
        response = await client.request(
            method, f"{stripe.prism.url}{path}?{query}", content=body, headers=headers
        )
    assert json.loads(response.headers.get("sl-violations", "[]")), response.status_code


async def test_the_github_validator_does_reject_wrong_bodies(github: Api) -> None:
    """Prism judges GitHub's JSON bodies — where it can compile their schema. It silently accepts every body
    of an operation whose schema its validator cannot compile (by hand: ``POST /repos/o/r/issues`` with ``{}``,
    though ``title`` is required, gets 201; its ``title`` is a ``oneOf`` with ``nullable`` and no ``type``), so
    for those operations Prism checks only that the request is routed and its parameters valid; openapi-core,
    the second judge, rejects that ``{}`` (``tests/test_http_openapi_judge.py``) and judges those bodies."""
    async with httpx.AsyncClient() as client:
        wrong = await client.patch(f"{github.prism.url}/repos/o/r", json={"name": 5})
        right = await client.patch(f"{github.prism.url}/repos/o/r", json={"name": "renamed"})
        unseen = await client.post(f"{github.prism.url}/repos/o/r/issues", json={})
    assert json.loads(wrong.headers.get("sl-violations", "[]"))
    assert not json.loads(right.headers.get("sl-violations", "[]")), right.headers.get("sl-violations")
    # the gap the second judge closes (if a Prism upgrade closes it too, this line says so)
    assert unseen.status_code == 201 and not json.loads(unseen.headers.get("sl-violations", "[]"))


async def test_a_stripe_file_given_as_bytes_is_accepted_by_both_judges(stripe: Api) -> None:
    """A file given as ``bytes`` (not the base64 text the suite above generates) goes out as a file part that
    Prism and openapi-core accept: ``POST /v1/files`` by the published document."""
    judged: list[tuple[httpx.Request, list[dict[str, Any]]]] = []

    async def record(response: httpx.Response) -> None:
        violations = json.loads(response.headers.get("sl-violations", "[]"))
        judged.append((response.request, [v for v in violations if v.get("severity") == "Error"]))

    async with stripe.node() as node:
        transport = node.transport
        assert isinstance(transport, HttpTransport) and transport.client is not None
        transport.client.event_hooks["response"].append(record)
        arguments = {
            "file": b"%PDF-1.4\n\x00\xff",
            "purpose": "dispute_evidence",
            "file_link_data": {"create": True},
        }
        await node.call("stripe.PostFiles", arguments)
    [(request, violations)] = judged
    assert not violations, violations
    assert (
        b'name="file"; filename="file"\r\nContent-Type: application/octet-stream\r\n\r\n%PDF-1.4\n\x00\xff'
        in (request.content)
    )
    verdicts = await asyncio.to_thread(Judge(stripe.published).verdicts, [request], judge_quirks(stripe))
    assert verdicts.judged == 1 and not verdicts.rejections, verdicts.rejections
