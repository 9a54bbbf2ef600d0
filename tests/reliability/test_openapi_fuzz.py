"""Input fuzzing driven by the OpenAPI document: every operation it declares (the data routes,
``/health``, ``/openapi.json``, the dashboard and its files), every parameter it declares, with
values drawn from the parameter's schema or anything else (random text, numbers, unicode), plus
parameters nobody declared.

``tests/read/test_fuzz_params.py`` fuzzes the data routes' known parameters by hand; this test
follows the document instead, so a route or parameter added later is fuzzed without a change
here. Properties: never a 5xx; the status is one the operation declares; every 4xx is a JSON
error naming the problem (a 400 names declared parameters); every 200 JSON body validates
against the declared schema. A parameter nobody declared is a 400 naming it (the web page and
its files ignore query strings).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import jsonschema
import orjson
import pytest
from chalice.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from readkit import WATCHLIST, Site, activate, get

from chalicelib.read.openapi import document

OPERATIONS = sorted(
    (path, item["get"]) for path, item in document()["paths"].items()
)  # every operation, by path
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ODD = ["", " ", "0", "-0", "+1", "1e309", "NaN", "0x1F", "1_000", "١٢", "%00", "..", "../..",
       "SPY;DROP", "ß", "İ", "💥", "null", "[]", "{}"]  # fmt: skip
hostile = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(ODD),
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """Values the schema accepts (as a client would write them), or near them."""
    if "enum" in schema:
        return st.sampled_from([str(v) for v in schema["enum"]])
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum", -1000), schema.get("maximum", 1000)
        return st.integers(low - 2, high + 2).map(str)
    if kind == "number":
        low, high = schema.get("minimum", -1e6), schema.get("maximum", 1e6)
        return st.floats(low - 1, high + 1, allow_nan=False).map(str)
    if schema.get("format") == "date":
        return st.dates().map(str)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    return st.text(max_size=20)


def value(name: str, schema: dict[str, Any]) -> st.SearchStrategy[str]:
    """Mostly what the schema allows (tickers the site publishes, in any case, half the time:
    a random symbol is almost never one), else anything."""
    valid = from_schema(schema)
    if name == "ticker":
        valid = st.one_of(st.sampled_from(WATCHLIST).map(str.lower), st.sampled_from(WATCHLIST),
                          valid)  # fmt: skip
    return st.one_of(valid, valid, hostile)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(url, operation, the parameters sent: declared ones, then any undeclared)."""
    path, op = draw(st.sampled_from(OPERATIONS))
    sent: dict[str, str] = {}
    query: dict[str, str] = {}
    for param in op.get("parameters", []):
        name = param["name"]
        if param["in"] == "path":
            # An empty segment is another path (the gateway answers it, not the app).
            text = draw(value(name, param["schema"]).filter(bool))
            path = path.replace("{" + name + "}", quote(text, safe=""))
            sent[name] = text
        elif draw(st.booleans()):
            query[name] = sent[name] = draw(value(name, param["schema"]))
    extra = draw(st.dictionaries(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), hostile,
                                 max_size=2))  # fmt: skip
    declared = {param["name"] for param in op.get("parameters", [])}
    for name, text in extra.items():
        if name not in declared:
            query.setdefault(name, text)
            sent[name] = text
    url = path + ("?" + urlencode(query, quote_via=quote) if query else "")
    return url, op, sent


@pytest.fixture
def served(site: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    activate(site, monkeypatch)
    return site


def json_schema(op: dict[str, Any], status: int) -> dict[str, Any] | None:
    content = op["responses"].get(str(status), {}).get("content", {})
    return content.get("application/json", {}).get("schema")


@FUZZ
@given(request=requests())
def test_every_declared_operation_survives_any_input(
    served: Site, client: Client, request: tuple[str, dict[str, Any], dict[str, str]]
) -> None:
    url, op, sent = request
    response = get(client, url)
    status = response.status_code
    event(f"{op['operationId']} {status}")
    assert status < 500, (url, status, response.body[:300])
    assert str(status) in op["responses"], (url, status, list(op["responses"]))
    content_type = response.headers.get("Content-Type", "").split(";")[0]
    body = orjson.loads(response.body) if content_type == "application/json" else None
    schema = json_schema(op, status)
    if status >= 400:  # JSON, as declared, saying what went wrong
        assert schema is not None and body is not None, (url, status, content_type)
        assert isinstance(body["error"], str) and body["error"], (url, body)
        assert isinstance(body["message"], str) and body["message"], (url, body)
        if status == 400:  # names the parameter(s) at fault, which the client did send
            fields = {d["field"] for d in body["details"]}
            assert fields and fields <= set(sent), (url, body)
    declared = {param["name"] for param in op.get("parameters", [])}
    undeclared = set(sent) - declared
    if undeclared and not op["operationId"].startswith("dashboard"):
        assert status == 400, (url, status)
        assert {d["field"] for d in body["details"]} <= undeclared, (url, body)
    if body is not None and schema is not None:
        errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(body)]
        assert not errors, (url, status, errors[:3])
    elif status == 200:
        assert content_type in op["responses"]["200"]["content"], (url, content_type)
