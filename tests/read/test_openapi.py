"""/openapi.json describes exactly the app's routes, their parameters, and what they answer."""

from __future__ import annotations

import re
import typing
from datetime import date
from typing import Any

import jsonschema
import openapi_spec_validator
import pytest
from chalice.test import Client
from pydantic.fields import FieldInfo
from readkit import Site, body, get

from app import app
from chalicelib.read.routes import ROUTES, Route

SAMPLE_PATHS = {
    "scans_latest": "/scans/latest?limit=2",
    "alerts_latest": "/alerts/latest?min_score=10",
    "alerts_summary": "/alerts/latest/summary",
    "alerts_query": "/alerts?ticker=SPY",
    "alerts_ticker": "/alerts/ticker/AAPL",
    "expirations": "/options/JPM/expirations",
    "snapshot": "/options/JPM/snapshot",
    "history": "/options/JPM/history?days=10",
    "features": "/features/JPM/latest",
    "tickers": "/tickers",
    "health": "/health",
    "openapi": "/openapi.json",
    "catalogue": "/catalogue.json",
}
PAGES = {
    "dashboard_index": "/",
    "dashboard_static": "/static/app.js",
    "alerts_feed": "/alerts/feed",
}  # not JSON; the feed: tests/delivery/test_feed_route.py
PUBLIC = {"/health", "/catalogue.json", "/", "/static/{name}"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    from chalicelib.read.openapi import document

    return document()


def operation(doc: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    for path, item in doc["paths"].items():
        if item["get"]["operationId"] == name:
            return path, item["get"]
    raise AssertionError(f"no operation {name}")


def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.Draft202012Validator  # OpenAPI 3.1 schemas are JSON Schema 2020-12
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_served_document_is_openapi_3(served: Site, client: Client, doc: dict) -> None:
    served_doc = body(get(client, "/openapi.json"))
    assert served_doc == doc
    assert re.fullmatch(r"3\.\d+\.\d+", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    openapi_spec_validator.validate(doc)


def test_paths_are_exactly_the_apps_routes(doc: dict) -> None:
    assert set(doc["paths"]) == set(app.routes)
    for path, methods in app.routes.items():
        assert set(methods) == {"GET", "HEAD"}, path
        assert set(doc["paths"][path]) == {"get", "head"}, path
    assert {*SAMPLE_PATHS, *PAGES} == {op["get"]["operationId"] for op in doc["paths"].values()}


def test_every_head_is_its_get_without_a_body(doc: dict) -> None:
    for path, item in doc["paths"].items():
        get_op, head = item["get"], item["head"]
        assert head["operationId"] == get_op["operationId"] + "_head"
        assert head.get("parameters") == get_op.get("parameters"), path
        assert set(head["responses"]) == set(get_op["responses"]), path
        assert not any("content" in r for r in head["responses"].values()), path


@pytest.mark.parametrize(("name", "path"), list(SAMPLE_PATHS.items()))
def test_head_answers_the_get_headers(served: Site, client: Client, name: str, path: str) -> None:
    got = get(client, path)
    head = client.http.request("HEAD", path)
    assert head.status_code == 200
    assert head.headers == got.headers  # the servers drop the body (tests/run/test_servers.py)


@pytest.mark.parametrize(("name", "path"), list(PAGES.items()))
def test_pages_answer_what_is_declared(
    served: Site, client: Client, doc: dict, name: str, path: str
) -> None:
    response = get(client, path)
    assert response.status_code == 200
    declared = operation(doc, name)[1]["responses"]["200"]["content"]
    assert response.headers["Content-Type"].split(";")[0] in declared


def test_static_names_are_declared_exactly(served: Site, client: Client, doc: dict) -> None:
    (param,) = operation(doc, "dashboard_static")[1]["parameters"]
    for name in param["schema"]["enum"]:
        assert get(client, f"/static/{name}").status_code == 200, name
    assert get(client, "/static/index.html").status_code == 404


def _schema_type(annotation: Any) -> tuple[str, str | None]:
    """(JSON type, format) of a params model field."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = typing.get_origin(annotation)
    if base is typing.Annotated or (args and base is not None):
        return _schema_type(args[0])
    return {int: ("integer", None), float: ("number", None), str: ("string", None),
            date: ("string", "date")}[annotation]  # fmt: skip


def _bound(field: FieldInfo, name: str) -> Any:
    return next((getattr(m, name) for m in field.metadata if hasattr(m, name)), None)


@pytest.mark.parametrize("route", list(ROUTES.values()), ids=lambda r: r.name)
def test_parameters_match_the_params_models(doc: dict, route: Route) -> None:
    path, op = operation(doc, route.name)
    assert path == route.path
    params = {p["name"]: p for p in op["parameters"]}
    fields = route.params.model_fields
    assert set(params) == set(fields)
    in_path = set(re.findall(r"{(\w+)}", route.path))
    for name, field in fields.items():
        param = params[name]
        assert param["in"] == ("path" if name in in_path else "query")
        assert param["required"] is (name in in_path)
        assert param["required"] is field.is_required()
        json_type, fmt = _schema_type(field.annotation)
        assert param["schema"]["type"] == json_type, name
        formats = {param["schema"].get("format")} | {
            branch.get("format") for branch in param["schema"].get("anyOf", [])
        }  # an optional date is "a date, or empty"
        assert fmt in formats, name
        assert param["schema"].get("minimum") == _bound(field, "ge"), name
        assert param["schema"].get("maximum") == _bound(field, "le"), name
        if not field.is_required() and field.default is not None:
            assert param["schema"]["default"] == field.default
        assert param.get("description"), name


def test_ticker_parameters_describe_what_is_accepted(doc: dict) -> None:
    pattern = operation(doc, "snapshot")[1]["parameters"][0]["schema"]["pattern"]
    for good in ("SPY", "spy", "BRK.B"):
        assert re.match(pattern, good)
    for bad in ("1SPY", "a b", "ABCDEFGHIJK", "ß"):
        assert not re.match(pattern, bad)


@pytest.mark.parametrize(("name", "path"), list(SAMPLE_PATHS.items()))
def test_actual_responses_validate_against_their_schema(
    served: Site, client: Client, doc: dict, name: str, path: str
) -> None:
    response = get(client, path)
    assert response.status_code == 200
    schema = operation(doc, name)[1]["responses"]["200"]["content"]["application/json"]["schema"]
    errors = [e.message for e in validator(schema).iter_errors(body(response))]
    assert not errors
    declared = operation(doc, name)[1]["responses"]["200"]["headers"]
    assert set(declared) <= set(response.headers)


def test_schemas_reject_what_they_should(served: Site, client: Client, doc: dict) -> None:
    """The response schemas have teeth: a summary with an extra field, or a contract with a
    string price, does not validate."""
    summary = body(get(client, "/alerts/latest/summary"))
    summary["alerts"][0]["metrics"] = {}
    schema = operation(doc, "alerts_summary")[1]["responses"]["200"]["content"]
    assert list(validator(schema["application/json"]["schema"]).iter_errors(summary))
    snapshot = body(get(client, "/options/SPY/snapshot"))
    snapshot["calls"][0]["bid"] = "1.00"
    schema = operation(doc, "snapshot")[1]["responses"]["200"]["content"]
    assert list(validator(schema["application/json"]["schema"]).iter_errors(snapshot))


@pytest.mark.parametrize(
    ("name", "path", "status"),
    [
        ("scans_latest", "/scans/latest?limit=0", "400"),
        ("snapshot", "/options/SPY/snapshot?expiration=2099-01-01", "404"),
        ("history", "/options/ZZZZ/history", "404"),
        ("alerts_query", "/alerts?detector=BAD", "400"),
    ],
)
def test_error_responses_validate_against_their_schema(
    served: Site, client: Client, doc: dict, name: str, path: str, status: str
) -> None:
    response = get(client, path)
    assert str(response.status_code) == status
    declared = operation(doc, name)[1]["responses"]
    schema = declared[status]["content"]["application/json"]["schema"]
    assert not list(validator(schema).iter_errors(body(response)))
    assert {"304", "400"} <= set(declared)


def test_no_security_is_declared_without_an_api_key(doc: dict) -> None:
    assert "components" not in doc
    for path, item in doc["paths"].items():
        for op in item.values():
            assert "security" not in op, path
            # A 401 only where a credential can be wrong anyway: the feed's ?token=.
            assert ("401" in op["responses"]) is (path == "/alerts/feed"), path
    feed = doc["paths"]["/alerts/feed"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in feed["parameters"]] == [
        ("token", "query", False)
    ]


def test_security_is_declared_for_every_route_but_health_with_a_key() -> None:
    from chalicelib.read.openapi import document

    secured = document(secured=True)
    openapi_spec_validator.validate(secured)
    assert secured["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"
    for path, item in secured["paths"].items():
        for op in item.values():
            expected = [] if path in PUBLIC else [{"apiKey": []}]
            assert op["security"] == expected, path
            assert ("401" in op["responses"]) is (path not in PUBLIC), path


def test_the_served_document_declares_the_key_when_one_is_set(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCD_API_KEY", "s3cret-key")
    served_doc = body(get(client, "/openapi.json", **{"x-api-key": "s3cret-key"}))
    assert served_doc["components"]["securitySchemes"]["apiKey"]["in"] == "header"
    assert served_doc["paths"]["/tickers"]["get"]["security"] == [{"apiKey": []}]


@pytest.mark.parametrize("path", sorted({*SAMPLE_PATHS.values()} - {"/openapi.json"}))
def test_every_operation_has_an_example_that_validates(doc: dict, path: str) -> None:
    route = path.split("?")[0]
    declared = next(p for p in doc["paths"] if re.fullmatch(re.sub(r"{\w+}", "[^/]+", p), route))
    media = doc["paths"][declared]["get"]["responses"]["200"]["content"]["application/json"]
    assert media["example"], declared
    assert not [e.message for e in validator(media["schema"]).iter_errors(media["example"])]


def test_every_response_field_is_described_with_its_unit(doc: dict) -> None:
    """Every field of every data route says what it is; catalogued ones say their unit, in the
    catalogue's words (one definition per fact)."""
    from chalicelib import catalogue

    for name in SAMPLE_PATHS:
        if name in ("health", "openapi", "catalogue"):
            continue
        schema = operation(doc, name)[1]["responses"]["200"]["content"]["application/json"]
        for field, prop in schema["schema"]["properties"].items():
            assert prop.get("description"), (name, field)
            items = prop.get("items", {}).get("properties", {})
            assert all(p.get("description") for p in items.values()), (name, field)
    snapshot = operation(doc, "snapshot")[1]["responses"]["200"]["content"]["application/json"]
    calls = snapshot["schema"]["properties"]["calls"]["items"]["properties"]
    assert "$ per calendar day" in calls["theta"]["description"]
    assert calls["gamma"]["description"].startswith(
        catalogue.CONTRACT_FIELD_BY_NAME["gamma"].definition
    )
    features = operation(doc, "features")[1]["responses"]["200"]["content"]["application/json"]
    listed = features["schema"]["properties"]["features"]["properties"]
    assert set(listed) == {f.name for f in catalogue.FEATURES}
    for entry in catalogue.FEATURES:
        described = listed[entry.name]["description"]
        assert described.startswith(f"{entry.definition} Unit: {entry.unit}."), entry.name
    assert "$ per 1 % move" in listed["gex_total"]["description"]
    by_expiry = listed["by_expiry"]["items"]["properties"]
    assert "Unit: percent." in by_expiry["sigma_move_pct"]["description"]


def test_the_features_schema_has_teeth(served: Site, client: Client, doc: dict) -> None:
    """A feature of the wrong type (a string IV) does not validate."""
    answer = body(get(client, "/features/SPY/latest"))
    answer["features"]["atm_iv"] = "0.2"
    schema = operation(doc, "features")[1]["responses"]["200"]["content"]["application/json"]
    assert list(validator(schema["schema"]).iter_errors(answer))


def test_the_catalogue_is_served_to_anyone(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import catalogue

    monkeypatch.setenv("OCD_API_KEY", "s3cret-key")
    response = get(client, "/catalogue.json")
    assert response.status_code == 200
    assert body(response) == catalogue.as_document()
    again = client.http.get("/catalogue.json", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert get(client, "/catalogue.json?x=1").status_code == 400


def test_an_empty_query_value_is_declared_as_absent(doc: dict) -> None:
    """``/alerts?ticker=&detector=`` is accepted (an HTML form sends empty fields), so the
    document says so; whitespace is not empty."""
    params = {p["name"]: p["schema"] for p in operation(doc, "alerts_query")[1]["parameters"]}
    assert re.fullmatch(params["ticker"]["pattern"], "")
    assert not re.fullmatch(params["ticker"]["pattern"], " ")
    assert "" in params["detector"]["enum"]
    path_ticker = operation(doc, "snapshot")[1]["parameters"][0]["schema"]["pattern"]
    assert not re.fullmatch(path_ticker, "")


def test_whitespace_is_not_trimmed_into_a_valid_value(served: Site, client: Client) -> None:
    for path, field in (("/scans/latest?limit=%205", "limit"), ("/alerts?ticker=%20SPY", "ticker"),
                        ("/options/SPY/snapshot?expiration=%20", "expiration")):  # fmt: skip
        response = get(client, path)
        assert response.status_code == 400, path
        assert body(response)["details"][0]["field"] == field
