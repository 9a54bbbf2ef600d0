"""The dashboard's own routes, through Chalice's test client: no browser, no data needed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from chalice.app import Request
from chalice.test import Client

from app import app
from chalicelib.read import dashboard


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("OCD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OCD_API_KEY", raising=False)
    with Client(app) as c:
        yield c


def test_index_is_html_with_relative_urls(client: Client) -> None:
    res = client.http.get("/")
    assert res.status_code == 200
    assert res.headers["Content-Type"] == "text/html; charset=utf-8"
    assert res.headers["ETag"] and res.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in res.headers["Content-Security-Policy"]
    page = res.body.decode()
    assert '<link rel="icon" href="data:,">' in page
    assert 'src="static/app.js"' in page and 'href="static/app.css"' in page
    assert not re.search(r'(src|href)="/', page), "URLs must be relative (API Gateway stage)"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.css", "text/css"),
        ("app.js", "application/javascript"),
        ("charts.js", "application/javascript"),
        ("api.js", "application/javascript"),
    ],
)
def test_static_files_have_their_content_type(client: Client, name: str, content_type: str) -> None:
    res = client.http.get(f"/static/{name}")
    assert res.status_code == 200
    assert res.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.body == dashboard.path_of(name).read_bytes()


def test_uplot_is_served_from_the_app_with_its_licence(client: Client) -> None:
    """No CDN: the pinned, vendored uPlot, loaded before the page's modules need it."""
    script = client.http.get("/static/uplot.js")
    assert script.status_code == 200
    assert script.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert script.body.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    css = client.http.get("/static/uplot.css")
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert css.body == (dashboard.STATIC_DIR / "vendor" / "uPlot.min.css").read_bytes()
    licence = (dashboard.STATIC_DIR / "vendor" / "uPlot.LICENSE").read_text()
    assert "MIT License" in licence and "Leon Sorokin" in licence
    page = client.http.get("/").body.decode()
    assert page.index('src="static/uplot.js"') < page.index('src="static/app.js"')
    assert "https://" not in page


def test_etag_revalidates_with_304(client: Client) -> None:
    etag = client.http.get("/static/app.js").headers["ETag"]
    again = client.http.get("/static/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.body == b""
    assert client.http.get("/", headers={"If-None-Match": etag}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/index.html",
        "/static/..%2Fapp.py",
        "/static/%2e%2e%2fapp.py",
        "/static/..%2F..%2Fetc%2Fpasswd",
        "/static/app.js%00.css",
    ],
)
def test_other_names_are_a_json_404_and_never_a_file(client: Client, path: str) -> None:
    res = client.http.get(path)
    assert res.status_code in (400, 404)
    assert res.headers["Content-Type"] == "application/json"
    assert orjson.loads(res.body)["error"] == "not_found"
    assert b"Chalice(" not in res.body and b"root:" not in res.body


def test_the_page_is_public_while_data_routes_need_the_key(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCD_API_KEY", "s3cret-key")
    assert client.http.get("/").status_code == 200
    assert client.http.get("/static/app.js").status_code == 200
    assert client.http.get("/tickers").status_code == 401
    assert client.http.get("/tickers", headers={"x-api-key": "s3cret-key"}).status_code != 401


def test_the_stage_root_without_a_slash_redirects_to_it() -> None:
    """Behind API Gateway, ``…/api`` must become ``…/api/`` so relative URLs stay in the stage."""
    event = {
        "multiValueQueryStringParameters": None,
        "headers": {},
        "pathParameters": None,
        "requestContext": {"httpMethod": "GET", "resourcePath": "/", "path": "/api"},
        "stageVariables": None,
        "body": None,
        "isBase64Encoded": False,
    }
    res = dashboard.index(Request(event))
    assert res.status_code == 301 and res.headers["Location"] == "/api/"


def test_every_static_file_is_listed_and_every_module_import_is_served() -> None:
    on_disk = {p.name for p in dashboard.STATIC_DIR.iterdir() if p.is_file()}
    assert on_disk | set(dashboard.PATHS) == set(dashboard.FILES)
    vendor = dashboard.STATIC_DIR / "vendor"
    vendored = {f"vendor/{p.name}" for p in vendor.iterdir() if not p.name.endswith(".LICENSE")}
    assert set(dashboard.PATHS.values()) == vendored  # nothing vendored that is not served
    for name in on_disk - {"index.html", "app.css"}:
        text = (dashboard.STATIC_DIR / name).read_text()
        for imported in re.findall(r'from "\./([^"]+)"', text):
            assert imported in dashboard.FILES, f"{name} imports {imported}, which is not served"


def test_the_page_escapes_data_it_never_uses_inner_html() -> None:
    for name in dashboard.FILES:
        if name.endswith(".js"):  # the vendored uPlot too
            text = dashboard.path_of(name).read_text()
            pattern = r"\.(inner|outer)HTML\s*=|insertAdjacentHTML\(|document\.write\("
            assert not re.search(pattern, text), name
