"""The second judge of the real-API suite (:mod:`tests.support.openapi_judge`: openapi-core, in-process) can fail:
wrong requests are rejected, for the reason that makes them wrong, and their right counterparts are not.

Needs only the documents of ``../shared/specs/`` (no Node): it skips without them, in CI it fails.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from werkzeug.datastructures import ImmutableMultiDict

from tests.support.openapi_judge import Judge, bracket_loads
from tests.support.openapi_mock import published

pytestmark = pytest.mark.slow

BEARER = {"Authorization": "Bearer sk_test_penguiflow"}
FORM = {**BEARER, "Content-Type": "application/x-www-form-urlencoded"}
FILE = {"file": ("a.txt", b"hello")}


@pytest.fixture(scope="module")
def judges() -> dict[str, Judge]:
    return {
        "github": Judge(published("github-api.json")),
        "stripe": Judge(published("stripe-2023-08-16.json")),
    }


@pytest.mark.parametrize(
    ("api", "method", "target", "send", "wrong"),
    [
        # the body Prism accepts (201) because it cannot compile the operation's schema
        ("github", "POST", "/repos/o/r/issues", {"json": {}}, "'title' is a required property"),
        ("github", "POST", "/repos/o/r/issues", {"json": {"title": "t", "labels": ["bug"]}}, None),
        ("github", "PATCH", "/repos/o/r", {"json": {"name": 5}}, "5 is not of type 'string'"),
        ("github", "GET", "/repos/o/r/issues?state=nonsense", {}, "'nonsense' is not one of"),
        ("github", "GET", "/repos/o/r/issues?state=closed&per_page=5", {}, None),
        # the read-only quirk of alert_number does not hide a value that is not an integer
        ("github", "GET", "/repos/o/r/code-scanning/alerts/x", {}, "Failed to cast value to integer type: x"),
        # path variables are judged decoded: this digest is too short, the right one (encoded ':') passes
        ("github", "GET", "/orgs/o/artifacts/sha256%3Azz/metadata/storage-records", {}, "is too short"),
        ("github", "GET", f"/orgs/o/artifacts/sha256%3A{'a' * 64}/metadata/storage-records", {}, None),
        ("github", "GET", "/repos/o/r/no-such-endpoint", {}, "Path not found"),
        # an object query parameter as Python repr (the old transport's), and as the brackets Stripe reads
        ("stripe", "GET", "/v1/customers?created=%7B%27gte%27%3A+1690000000%7D", {"headers": BEARER}, "not valid"),
        ("stripe", "GET", "/v1/customers?created[gte]=1690000000&expand[]=data", {"headers": BEARER}, None),
        ("stripe", "GET", "/v1/customers?limit=ten", {"headers": BEARER}, "Failed to cast value to integer"),
        ("stripe", "GET", "/v1/customers", {}, "Security not found"),  # no credentials at all
        # a deepObject form field as JSON text (fastmcp's director), and as brackets
        (
            "stripe", "POST", "/v1/customers",
            {"headers": FORM, "content": b"metadata=%7B%22order_id%22%3A+%226735%22%7D"}, "not valid",
        ),
        ("stripe", "POST", "/v1/customers", {"headers": FORM, "content": b"metadata[order_id]=6735"}, None),
        (
            "stripe", "POST", "/v1/customers",
            {"headers": FORM, "content": b"tax_id_data[0][type]=nonsense&tax_id_data[0][value]=x"},
            "'nonsense' is not one of",
        ),
        (
            "stripe", "POST", "/v1/customers",
            {"headers": FORM, "content": b"tax_id_data[0][type]=eu_vat&tax_id_data[0][value]=x"}, None,
        ),
        # multipart, judged at the operation's own server (files.stripe.com)
        (
            "stripe", "POST", "/v1/files",
            {"headers": BEARER, "files": FILE, "data": {"purpose": "dispute_evidence", "file_link_data[create]": "maybe"}},
            "Failed to cast value to boolean type: maybe",
        ),
        (
            "stripe", "POST", "/v1/files",
            {"headers": BEARER, "files": FILE, "data": {"purpose": "nonsense"}}, "'nonsense' is not one of",
        ),
        (
            "stripe", "POST", "/v1/files",
            {"headers": BEARER, "files": FILE, "data": {"purpose": "dispute_evidence", "file_link_data[create]": "true"}},
            None,
        ),
    ],
)  # fmt: skip
def test_the_openapi_core_judge_rejects_wrong_requests(
    judges: dict[str, Judge], api: str, method: str, target: str, send: dict[str, Any], wrong: str | None
) -> None:
    request = httpx.Request(method, f"http://127.0.0.1:9{target}", **send)
    verdicts = judges[api].verdicts([request])
    messages = [rejection.message for rejection in verdicts.rejections]
    assert verdicts.judged == 1
    if wrong is None:
        assert not messages, messages
    else:
        assert len(messages) == 1 and wrong in messages[0], messages


def test_the_bracket_reader_reads_what_stripe_documents() -> None:
    """``metadata[order_id]=6735``, ``items[0][price]=price_1`` and ``expand[]=customer`` (Stripe's API
    reference, "Metadata", "Expanding responses") — and only the parameter asked for."""
    form = httpx.QueryParams(
        "metadata[order_id]=6735&items[0][price]=price_1&items[1][price]=price_2&items[1][quantity]=2"
        "&expand[]=customer&expand[]=invoice&created=1690000000&other[x]=1"
    )
    location = ImmutableMultiDict(form.multi_items())
    assert bracket_loads(True, "metadata", "object", location) == {"order_id": "6735"}
    assert bracket_loads(True, "items", "array", location) == [
        {"price": "price_1"},
        {"price": "price_2", "quantity": "2"},
    ]
    assert bracket_loads(True, "expand", "array", location) == ["customer", "invoice"]
    assert bracket_loads(True, "created", "", location) == "1690000000"
    with pytest.raises(KeyError):
        bracket_loads(True, "absent", "object", location)
